import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "acumos_portal.settings")
application = get_wsgi_application()

# Everything loaded so far (Django, the apps, their modules) lives as long as the process: moved out
# of the garbage collector's generations, a full collection no longer walks it in the middle of a
# request (Instagram's gc.freeze). Measured with bench/marketplace_pages.py: p95 10-20% lower.
gc.collect()
gc.freeze()
