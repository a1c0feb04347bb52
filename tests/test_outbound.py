"""The guard for URLs a user types (acumos_portal.outbound): what it refuses and says, the admin's allowance, and
the POST that connects to the address it checked (DNS rebinding), keeps TLS about the name, follows no
redirect and reads a capped answer. Names are resolved by a stand-in for getaddrinfo: no test asks real DNS."""

from __future__ import annotations

import datetime
import socket
import ssl

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from acumos_portal import outbound
from acumos_portal.outbound import UnsafeUrl, check_url

from .receivers import Answer, Receiver

PUBLIC = "93.184.215.14"  # a public address, written as a literal: no resolution, never connected to


@pytest.fixture
def names(monkeypatch):
    """`names["host"] = [addresses]` (or a list of such lists, one per lookup; None: no such name); other hosts
    resolve for real
    (only literals and localhost in these tests). Records every name looked up."""
    table: dict[str, list] = {}
    looked_up: list[str] = []
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        looked_up.append(host)
        if host not in table:
            return real(host, port, *args, **kwargs)
        answers = table[host]
        if answers is None:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        addresses = answers.pop(0) if answers and isinstance(answers[0], list) else answers
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
                for a in addresses]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    table["looked up"] = looked_up
    return table


@pytest.mark.parametrize(("url", "said"), [
    ("http://127.0.0.1/hook", "127.0.0.1 is a loopback address"),
    ("http://127.8.9.10:8080/hook", "127.8.9.10 is a loopback address"),
    ("http://10.1.2.3/hook", "10.1.2.3 is a private address"),
    ("http://192.168.1.5/hook", "192.168.1.5 is a private address"),
    ("http://169.254.169.254/latest/meta-data", "169.254.169.254 is a link-local address"),
    ("http://[::1]/hook", "::1 is a loopback address"),
    ("http://[::ffff:127.0.0.1]/hook", "::ffff:127.0.0.1 is a loopback address (written as the IPv6 address"),
    ("http://[::ffff:10.0.0.1]/hook", "is a private address (written as the IPv6 address"),
    ("http://[fe80::1]/hook", "fe80::1 is a link-local address"),
    ("http://0.0.0.0/hook", "0.0.0.0 is an unspecified address"),
    ("http://224.0.0.1/hook", "224.0.0.1 is a multicast address"),
    ("http://100.64.0.1/hook", "100.64.0.1 is not a public address"),
    ("http://localhost:8000/hook", "localhost resolves to"),
    ("http://2130706433/hook", "2130706433 resolves to 127.0.0.1, which is a loopback address"),
])
def test_it_refuses_addresses_that_are_not_public_and_says_which(url, said):
    with pytest.raises(UnsafeUrl) as refused:
        check_url(url, allow_private=False)
    assert said in str(refused.value)
    assert "hooks may only call public addresses" in str(refused.value)


@pytest.mark.parametrize(("url", "said"), [
    ("ftp://example.com/hook", "must start with http:// or https://, not ftp:"),
    ("file:///etc/passwd", "must start with http:// or https://, not file:"),
    ("gopher://127.0.0.1:25/", "not gopher:"),
    ("//example.com/hook", "not nothing:"),
    ("http://user:pass@example.com/hook", "may not carry a user name or password"),
    ("http://token@example.com/hook", "may not carry a user name or password"),
    ("http:///hook", "names no host"),
    ("http://example.com:99999/hook", "cannot be read"),
    ("http://exa mple.com/", "spaces"),
    ("", "empty"),
])
def test_it_refuses_other_schemes_credentials_and_unreadable_urls_even_when_private_is_allowed(url, said):
    for allow_private in (False, True):
        with pytest.raises(UnsafeUrl) as refused:
            check_url(url, allow_private=allow_private)
        assert said in str(refused.value)


def test_a_name_is_refused_if_any_of_its_addresses_is_private(names):
    names["trainer.example"] = [PUBLIC, "10.0.0.7"]
    with pytest.raises(UnsafeUrl, match=r"trainer.example resolves to 10.0.0.7, which is a private address"):
        check_url("https://trainer.example/hook", allow_private=False)


def test_a_name_that_does_not_resolve_is_refused(names):
    names["nowhere.example"] = None
    names["empty.example"] = []
    with pytest.raises(UnsafeUrl, match="nowhere.example cannot be resolved: .*Name or service not known"):
        check_url("https://nowhere.example/hook", allow_private=False)
    with pytest.raises(UnsafeUrl, match="empty.example resolves to no address"):
        check_url("https://empty.example/hook", allow_private=True)


def test_public_addresses_pass(names):
    names["trainer.example"] = [PUBLIC, "2606:4700::6810:84e5"]
    assert check_url("https://trainer.example/retrain?x=1", allow_private=False) == \
        "https://trainer.example/retrain?x=1"
    assert check_url(f"http://{PUBLIC}:8080/", allow_private=False) == f"http://{PUBLIC}:8080/"


def test_the_admins_allowance_lets_loopback_and_private_addresses_pass():
    for url in ("http://127.0.0.1:9000/hook", "http://localhost/hook", "http://10.1.2.3/", "http://[::1]/"):
        assert check_url(url, allow_private=True) == url


# ---------------------------------------------------------------- the request

def test_the_post_connects_to_the_address_it_checked_not_to_a_second_lookup(names):
    """DNS rebinding: the name answers the check with one address and would answer the connection with
    another. The request reaches the first (the test's receiver): the name was looked up once."""
    with Receiver(Answer(204, b"")) as receiver:
        names["rebind.example"] = [["127.0.0.1"], ["10.255.255.1"]]
        answer = outbound.post(f"http://rebind.example:{receiver.port}/hook?a=1", b'{"x": 1}',
                               {"Content-Type": "application/json"}, allow_private=True, timeout=5)
    assert answer.status == 204
    assert names["looked up"].count("rebind.example") == 1
    [got] = receiver.requests
    assert got.path == "/hook?a=1" and got.body == b'{"x": 1}'
    assert got.headers["Host"] == f"rebind.example:{receiver.port}"


def test_a_redirect_is_not_followed_and_its_target_is_told():
    with Receiver(Answer(302, b"", {"Location": "http://169.254.169.254/latest"})) as receiver:
        answer = outbound.post(receiver.url, b"{}", {}, allow_private=True, timeout=5)
    assert answer.status == 302 and answer.location == "http://169.254.169.254/latest"
    assert len(receiver.requests) == 1


def test_the_answer_is_read_up_to_a_limit():
    with Receiver(Answer(200, b"x" * (outbound.ANSWER_LIMIT * 4))) as receiver:
        answer = outbound.post(receiver.url, b"{}", {}, allow_private=True, timeout=5)
    assert answer.truncated and len(answer.body) == outbound.ANSWER_LIMIT


def test_the_guard_is_asked_again_at_each_post(names):
    names["trainer.example"] = ["127.0.0.1"]
    with pytest.raises(UnsafeUrl, match="loopback"):
        outbound.post("http://trainer.example:9/hook", b"{}", {}, allow_private=False, timeout=5)


def _certificate(tmp_path, name: str):
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_https_to_the_pinned_address_checks_the_certificate_against_the_name(names, tmp_path):
    cert, key = _certificate(tmp_path, "trainer.example")
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    names["trainer.example"] = ["127.0.0.1"]
    names["impostor.example"] = ["127.0.0.1"]
    with Receiver(Answer(200, b"ok"), tls=tls) as receiver:
        answer = outbound.post(f"https://trainer.example:{receiver.port}/hook", b"{}", {}, allow_private=True,
                               timeout=5, verify=str(cert))
        assert answer.status == 200 and answer.body == b"ok"
        # The same server under a name its certificate does not carry: refused, though the address is the same.
        with pytest.raises(requests.exceptions.SSLError):
            outbound.post(f"https://impostor.example:{receiver.port}/hook", b"{}", {}, allow_private=True,
                          timeout=5, verify=str(cert))
    assert len(receiver.requests) == 1


def test_ipv6_literals_are_pinned_with_brackets():
    """Nothing listens there: the connection is refused, which it could not be for a URL written wrong."""
    with pytest.raises(requests.exceptions.ConnectionError):
        outbound.post("http://[::1]:9/hook", b"{}", {}, allow_private=True, timeout=2)
