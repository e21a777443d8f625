"""GB 3304-1991 ethnic group codes (民族代码), in the standard's own order.

Some public readers drop 水族 and shift every later code by one; this table keeps the full order
(25 水族, 33 羌族), checked against several independent public tables.
"""

from __future__ import annotations

NATIONS: dict[int, str] = {
    1: "汉族", 2: "蒙古族", 3: "回族", 4: "藏族", 5: "维吾尔族", 6: "苗族", 7: "彝族", 8: "壮族",
    9: "布依族", 10: "朝鲜族", 11: "满族", 12: "侗族", 13: "瑶族", 14: "白族", 15: "土家族",
    16: "哈尼族", 17: "哈萨克族", 18: "傣族", 19: "黎族", 20: "傈僳族", 21: "佤族", 22: "畲族",
    23: "高山族", 24: "拉祜族", 25: "水族", 26: "东乡族", 27: "纳西族", 28: "景颇族", 29: "柯尔克孜族",
    30: "土族", 31: "达斡尔族", 32: "仫佬族", 33: "羌族", 34: "布朗族", 35: "撒拉族", 36: "毛南族",
    37: "仡佬族", 38: "锡伯族", 39: "阿昌族", 40: "普米族", 41: "塔吉克族", 42: "怒族", 43: "乌孜别克族",
    44: "俄罗斯族", 45: "鄂温克族", 46: "德昂族", 47: "保安族", 48: "裕固族", 49: "京族", 50: "塔塔尔族",
    51: "独龙族", 52: "鄂伦春族", 53: "赫哲族", 54: "门巴族", 55: "珞巴族", 56: "基诺族",
    97: "其他", 98: "外国血统中国籍人士",
}


def nation_name(code: int | None) -> str:
    """Full name for a code ("汉族"); "" for None or an unknown code."""
    return NATIONS.get(code, "") if code is not None else ""


def card_face_name(code: int | None) -> str:
    """As printed on the card face: "汉", "维吾尔" (the trailing 族 is not printed)."""
    name = nation_name(code)
    return name[:-1] if name.endswith("族") else name
