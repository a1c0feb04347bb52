"""The federation TLS terminator (federation/terminator.py): write its nginx configuration, or run
nginx with it in the foreground (what `make run` starts beside the server when there is an identity)."""

import os
import sys
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connections

from federation import identity, terminator


class Command(BaseCommand):
    help = ("Write (--write PATH) or run (--run) the nginx TLS terminator in front of the peer API: mutual TLS "
            "with this instance's identity, only /federation/ forwarded to the portal.")

    def add_arguments(self, parser):
        parser.add_argument("--write", type=Path, metavar="PATH", help="write the nginx configuration to PATH")
        parser.add_argument("--directory", type=Path,
                            help="where nginx keeps its pid, logs and temp paths (default: PATH's folder)")
        parser.add_argument("--run", action="store_true",
                            help="write it to ACUMOS_FEDERATION_DIR/nginx/ and run nginx in the foreground")
        parser.add_argument("--upstream", metavar="HOST:PORT",
                            help="the portal to forward to (default: the first address of ACUMOS_WEB_BIND)")
        parser.add_argument("--client-ca", type=Path, metavar="FILE",
                            help="the strict alternative: nginx itself accepts only client certificates issued "
                                 "by a CA in FILE (the peers' CAs; rewrite it and reload nginx when peers change)")

    def handle(self, *args, **options):
        if bool(options["write"]) == options["run"]:
            raise CommandError("say --write PATH (write the configuration) or --run (write it and run nginx)")
        if options["client_ca"] and not options["client_ca"].is_file():
            raise CommandError(f"--client-ca: {options['client_ca']} is not a file")
        if options["run"]:
            self._run(options)
        else:
            conf = options["write"].resolve()
            written = self._write(conf, (options["directory"] or conf.parent).resolve(), options)
            self.stdout.write(f"written {written} (mode 0600: it holds the terminator secret); "
                              f"run: nginx -c {written} -g 'daemon off;'")

    def _write(self, conf: Path, directory: Path, options) -> Path:
        try:
            config = terminator.for_this_instance(directory, upstream=options["upstream"],
                                                  client_ca=options["client_ca"] and options["client_ca"].resolve())
            return terminator.write(config, conf)
        except identity.NoIdentity as exc:
            raise CommandError(f"{exc}; then run this again") from exc
        except terminator.TerminatorProblem as exc:
            raise CommandError(str(exc)) from exc

    def _run(self, options) -> None:
        directory = identity.directory() / "nginx"
        try:
            command = terminator.run_command(directory / terminator.CONF_NAME)
        except terminator.TerminatorProblem as exc:
            raise CommandError(str(exc)) from exc
        conf = self._write(directory / terminator.CONF_NAME, directory, options)
        upstream = options["upstream"] or terminator.default_upstream()
        self.stdout.write(f"federation terminator: https://{settings.ACUMOS_FEDERATION_BIND} "
                          f"(mutual TLS) -> http://{upstream}/federation/ [{conf}]")
        sys.stdout.flush()
        sys.stderr.flush()
        connections.close_all()
        os.execv(command[0], command)
