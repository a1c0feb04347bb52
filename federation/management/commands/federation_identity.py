"""This instance's federation identity: show it, make one for a new site, or import the operator's.
The private key is written for this user only and never printed."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from federation import identity
from federation.certificates import CertificateProblem


class Command(BaseCommand):
    help = "Show, create (--create --name) or import (--import-cert/--import-key) this instance's federation identity."

    def add_arguments(self, parser):
        parser.add_argument("--create", action="store_true", help="make a CA of this site's own and a certificate")
        parser.add_argument("--name", help="this instance's name: its certificate's CN (e.g. models.example.org)")
        parser.add_argument("--host", action="append", default=[],
                            help="a host name or IP peers reach the terminator by (repeatable; default: --name)")
        parser.add_argument("--days", type=int, default=825, help="how long the certificate is valid")
        parser.add_argument("--import-cert", type=Path, help="a PEM certificate (with its chain) to use")
        parser.add_argument("--import-key", type=Path, help="its unencrypted PEM private key")
        parser.add_argument("--import-ca", type=Path, help="the PEM CA certificate(s) that issued it")
        parser.add_argument("--replace", action="store_true", help="replace an existing identity")

    def handle(self, *args, **options):
        if options["create"] or options["import_cert"]:
            self._make(options)
        if not identity.exists():
            raise CommandError("no federation identity yet: run with --create --name <host name>, "
                               "or --import-cert/--import-key")
        self._show(identity.load())

    def _make(self, options) -> None:
        if identity.exists() and not options["replace"]:
            raise CommandError(f"an identity exists already in {identity.directory()}; add --replace to replace it "
                               "(peers must then register the new certificate or CA)")
        try:
            if options["import_cert"]:
                if not options["import_key"]:
                    raise CommandError("--import-cert needs --import-key")
                identity.import_files(options["import_cert"], options["import_key"], options["import_ca"])
            else:
                if not options["name"]:
                    raise CommandError("--create needs --name: this instance's name, e.g. models.example.org")
                identity.create(options["name"], options["host"] or [options["name"]], days=options["days"])
        except (CertificateProblem, OSError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS("identity written; restart the portal so that it uses it"))

    def _show(self, me: identity.Identity) -> None:
        ca = identity.directory() / identity.CA_FILE
        self.stdout.write(f"name (subject CN): {me.name}\n"
                          f"instance id:       {me.instance_id}\n"
                          f"fingerprint:       {me.fingerprint}\n"
                          f"valid until:       {me.certificate.not_valid_after_utc:%Y-%m-%d} UTC\n"
                          f"give peers:        {ca if ca.exists() else me.cert_path} and the subject CN {me.name}\n")
