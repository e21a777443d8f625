from io import BytesIO

from kivy.core.image import Image as CoreImage

from screens.base import KioskScreen


class ShowQrScreen(KioskScreen):
    """The printer cannot print: the receipt's QR code on screen, for a phone photo."""

    def render(self, view) -> None:
        self.ids.reason.text = view.extra.get("reason", "")
        if view.qr_url:
            from kiosk.receipts import receipt_qr_png  # qrcode and PIL: only when a code is shown

            png = receipt_qr_png(view.qr_url)
            self.ids.qr.texture = CoreImage(BytesIO(png), ext="png").texture
