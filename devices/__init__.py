"""Device drivers and their twins. No Kivy import anywhere under devices/."""
