"""What monitoring tells the rest of the portal.

`alert_fired` is sent once per alert, when a rule starts firing (not on every round while it holds),
after the alert row is saved, with `sender=Alert` and `alert=<the Alert>`. The retraining hook listens
to it; a receiver that starts work should queue a job rather than call out from the collection round."""

from django.dispatch import Signal

alert_fired = Signal()
