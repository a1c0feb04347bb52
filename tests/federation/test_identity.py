"""This instance's identity (made, imported, shown: never its key) and the signatures made with it:
every key type the command takes signs and verifies, a signature holds only over the bytes it
signed, and a certificate is vouched for only by the certificate or CA registered for it."""

from __future__ import annotations

import datetime
import stat
from io import StringIO

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID
from django.core.management import CommandError, call_command

from federation import identity, signing
from federation.certificates import vouched_for

from .pki import ThrowawayCA


@pytest.fixture
def folder(settings, tmp_path):
    settings.ACUMOS_FEDERATION_DIR = tmp_path / "federation"
    identity.forget()
    yield settings.ACUMOS_FEDERATION_DIR
    identity.forget()


def show() -> str:
    out = StringIO()
    call_command("federation_identity", stdout=out)
    return out.getvalue()


def test_a_new_site_makes_its_identity_with_keys_for_its_user_only(folder):
    call_command("federation_identity", "--create", "--name", "models.alpha.test", "--host", "127.0.0.1",
                 stdout=StringIO())
    me = identity.load()
    assert me.name == "models.alpha.test"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for key in (identity.KEY_FILE, identity.CA_KEY_FILE):
        assert stat.S_IMODE((folder / key).stat().st_mode) == 0o600
    names = me.certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert vouched_for(me.certificate, list(me.chain))  # issued by the site's own CA, which peers register
    shown = show()
    assert me.fingerprint in shown and "PRIVATE KEY" not in shown and "BEGIN" not in shown


def test_an_identity_is_not_replaced_by_accident(folder):
    identity.create("a.test", ["a.test"])
    first = identity.load().fingerprint
    with pytest.raises(CommandError, match="--replace"):
        call_command("federation_identity", "--create", "--name", "b.test", stdout=StringIO())
    assert identity.load().fingerprint == first
    call_command("federation_identity", "--create", "--name", "b.test", "--replace", stdout=StringIO())
    assert identity.load().name == "b.test" and identity.load().instance_id  # the instance keeps its id


def test_an_operators_certificate_is_imported_and_a_key_that_is_not_its_own_refused(folder, tmp_path):
    ca = ThrowawayCA("Org CA")
    issued = ca.issue("models.org.test")
    cert, key = issued.write(tmp_path, "mine")
    other_cert, other_key = ca.issue("other.test").write(tmp_path, "other")
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text(ca.pem)
    with pytest.raises(CommandError, match="does not belong"):
        call_command("federation_identity", "--import-cert", str(cert), "--import-key", str(other_key),
                     stdout=StringIO())
    assert not identity.exists()
    call_command("federation_identity", "--import-cert", str(cert), "--import-key", str(key), "--import-ca",
                 str(ca_file), stdout=StringIO())
    assert identity.load().name == "models.org.test" and identity.load().public_pem() == ca.pem


def test_without_an_identity_the_command_says_how_to_make_one(folder):
    with pytest.raises(CommandError, match="--create --name"):
        show()


# ---------------------------------------------------------------- signatures

class Signer:
    """An identity with a key of a given type (what the command can import)."""

    def __init__(self, key):
        self.key = key
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "signer.test")])
        now = datetime.datetime.now(datetime.UTC)
        algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
        self.certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                            .public_key(key.public_key()).serial_number(1).not_valid_before(now)
                            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, algorithm))

    def private_key(self):
        return self.key


@pytest.mark.parametrize("key", [ec.generate_private_key(ec.SECP256R1()),
                                 rsa.generate_private_key(public_exponent=65537, key_size=2048),
                                 ed25519.Ed25519PrivateKey.generate()], ids=["ES256", "RS256", "EdDSA"])
def test_every_key_type_signs_and_the_signature_holds_only_over_what_it_signed(key):
    me = Signer(key)
    document = {"b": [1, 2.5, "ü"], "a": {"nested": True}}
    signature = signing.sign(document, me)
    assert signing.verify({"a": {"nested": True}, "b": [1, 2.5, "ü"]}, signature, [me.certificate]).trusted
    assert not signing.verify(document, signature, []).trusted  # holds, but nobody here vouches for it
    with pytest.raises(signing.BadSignature):
        signing.verify({**document, "c": 1}, signature, [me.certificate])
    with pytest.raises(signing.BadSignature):
        signing.verify(document, {**signature, "alg": "none"}, [me.certificate])


def test_a_signature_cannot_claim_another_algorithm_for_its_key():
    me = Signer(ec.generate_private_key(ec.SECP256R1()))
    signature = signing.sign({"x": 1}, me)
    with pytest.raises(signing.BadSignature):
        signing.verify({"x": 1}, {**signature, "alg": "RS256"}, [me.certificate])


def test_a_ca_vouches_only_for_what_it_issued_itself():
    """An intermediate issued by a peer's CA could mint certificates for any name: only certificates the
    registered CA issued directly count."""
    root = ThrowawayCA("Peer root")
    key = ec.generate_private_key(ec.SECP256R1())
    start = datetime.datetime.now(datetime.UTC)
    intermediate = (x509.CertificateBuilder()
                    .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Sub CA")]))
                    .issuer_name(root.certificate.subject).public_key(key.public_key()).serial_number(2)
                    .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=1))
                    .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                    .sign(root.key, hashes.SHA256()))
    minted = identity.issue(intermediate, key, ec.generate_private_key(ec.SECP256R1()).public_key(), "victim.test",
                            ["victim.test"])
    assert vouched_for(root.issue("peer.test").certificate, [root.certificate])
    assert not vouched_for(minted, [root.certificate])
    assert not vouched_for(root.issue("peer.test").certificate, [ThrowawayCA("Other").certificate])
    leaf = root.issue("pinned.test").certificate
    assert vouched_for(leaf, [leaf]) and not vouched_for(root.issue("pinned.test").certificate, [leaf])
