"""Who the client is: the connection's peer, and X-Forwarded-For only as far back as the proxies the
operator listed."""

from __future__ import annotations

import subprocess
import sys

import pytest
from django.test import RequestFactory

from acumos_portal.accounts.clientip import client_ip

from ..conftest import REPO


def request(remote: str | None, forwarded: str | None = None):
    extra = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded is not None else {}
    made = RequestFactory().get("/", **extra)
    if remote is None:
        del made.META["REMOTE_ADDR"]
    else:
        made.META["REMOTE_ADDR"] = remote
    return made


@pytest.mark.parametrize(("proxies", "remote", "forwarded", "client"), [
    pytest.param([], "127.0.0.1", "203.0.113.5", "127.0.0.1", id="no-proxies-the-header-is-ignored"),
    pytest.param(["10.0.0.5"], "127.0.0.1", "203.0.113.5", "127.0.0.1", id="not-from-a-listed-proxy"),
    pytest.param(["10.0.0.5"], "10.0.0.5", "203.0.113.5", "203.0.113.5", id="from-a-listed-proxy"),
    pytest.param(["10.0.0.5"], "10.0.0.5", "1.1.1.1, 203.0.113.5", "203.0.113.5", id="what-the-client-wrote"),
    pytest.param(["10.0.0.0/24"], "10.0.0.5", "198.51.100.7, 10.0.0.9", "198.51.100.7", id="a-chain-of-listed-proxies"),
    pytest.param(["10.0.0.5"], "10.0.0.5", "203.0.113.5, 10.0.0.9", "10.0.0.9", id="an-unlisted-hop-is-the-client"),
    pytest.param(["10.0.0.5"], "10.0.0.5", "not-an-address", "10.0.0.5", id="garbage-stops-at-the-proxy"),
    pytest.param(["10.0.0.5"], "10.0.0.5", "", "10.0.0.5", id="an-empty-header"),
    pytest.param(["10.0.0.5"], "10.0.0.5", None, "10.0.0.5", id="no-header"),
    pytest.param(["::1"], "::1", "2001:db8::7", "2001:db8::7", id="ipv6"),
    pytest.param(["10.0.0.5"], "::ffff:10.0.0.5", "203.0.113.5", "203.0.113.5", id="ipv4-mapped-peer"),
    pytest.param([], None, "203.0.113.5", None, id="no-peer-at-all"),
])
def test_the_client_is_the_nearest_address_no_listed_proxy_wrote(settings, proxies, remote, forwarded, client):
    settings.ACUMOS_TRUSTED_PROXIES = proxies
    assert client_ip(request(remote, forwarded)) == client


def test_a_proxy_list_that_is_not_addresses_stops_start_up(tmp_path):
    env = {"DJANGO_SETTINGS_MODULE": "acumos_portal.settings", "PATH": "/usr/bin:/bin", "DJANGO_SECRET_KEY": "x" * 50,
           "ACUMOS_DATA_DIR": str(tmp_path), "ACUMOS_TRUSTED_PROXIES": "10.0.0.1,proxy.example"}
    result = subprocess.run([sys.executable, "-c", "from django.conf import settings; settings.DEBUG"], env=env,
                            cwd=REPO, check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "ACUMOS_TRUSTED_PROXIES: 'proxy.example' is not an address or network" in result.stderr
