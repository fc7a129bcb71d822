/**
 * How bottle starts mitmproxy: `python3 /config/bottle_launch.py <mitmdump's
 * arguments>`, a launcher bottle writes beside its addon.
 *
 * mitmdump's own start loads every default addon, the onboarding app (Flask,
 * Werkzeug, Jinja), proxy authentication (passlib, ldap3), local mapping
 * (Werkzeug) and the flow printer (every content view) among them, and makes
 * an RSA-2048 CA: measured on Debian's mitmproxy 8.1, 1.1-1.6 s of CPU before
 * the proxy answers, of which those are about three quarters. A bottle's
 * proxy serves no onboarding page, asks for no proxy authentication, maps
 * nothing to local files, prints no flows (`--quiet`), and opens TLS only for
 * hosts it injects a secret into, with the bottle's own CA. So the launcher
 * - puts small stand-ins in place of those four addons' modules, registering
 *   the options mitmdump's command line and main read (a value set for
 *   `proxyauth` or `map_local` is refused);
 * - gives mitmproxy its CA before it starts: the bottle's own
 *   (`BOTTLE_EGRESS_CA`), or else a P-256 one made in a millisecond, which
 *   nothing uses (the TLS of every host without a secret passes through
 *   unopened);
 * - runs mitmdump's own main with the same arguments.
 * If that ends in an error before the proxy runs (a mitmproxy release the
 * stand-ins do not fit), it says so in one JSON line and starts mitmdump
 * itself, unchanged (a CA the launcher made is taken back first: mitmproxy
 * makes its own, as before).
 *
 * Written for mitmproxy 8.1 (Debian's) and 12 (the published image) alike:
 * both import the four modules from `mitmproxy.addons` under these names and
 * read the same options of them.
 */
export const EGRESS_LAUNCH_FILE = "bottle_launch.py"

/** The command that starts bottle's mitmproxy, given mitmdump's arguments. */
export const EGRESS_LAUNCH_COMMAND = ["python3", `/config/${EGRESS_LAUNCH_FILE}`] as const

export const EGRESS_LAUNCH = String.raw`# Written by bottle: starts its egress proxy. Rewritten on every apply; do not edit.
import datetime
import json
import os
import sys
import types
import typing

# What the stand-ins saw: made by mitmproxy, an option of theirs refused, the proxy running.
seen = {"made": False, "refused": False, "running": False}


def log(event, **fields):
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    print(json.dumps({"time": now, "event": event, **fields}), flush=True)


def stand_ins():
    """Puts stand-ins in place of the modules of addons bottle's proxy never uses, registering the options mitmdump reads."""
    from collections.abc import Sequence
    from mitmproxy import ctx, exceptions

    # module, addon class, its options (name, type, default), and whether a value set for them is refused.
    table = (
        ("onboarding", "Onboarding", (("onboarding", bool, False), ("onboarding_host", str, "mitm.it")), False),
        ("proxyauth", "ProxyAuth", (("proxyauth", typing.Optional[str], None),), True),
        ("maplocal", "MapLocal", (("map_local", Sequence[str], []),), True),
        ("dumper", "Dumper", (("flow_detail", int, 1), ("dumper_default_contentview", str, "auto"), ("dumper_filter", typing.Optional[str], None)), False),
    )
    for module, name, options, refused in table:

        class StandIn:
            def __init__(self, *args, **kwargs):
                seen["made"] = True

            def load(self, loader, options=options):
                for option, kind, default in options:
                    loader.add_option(option, kind, default, "Not in bottle's proxy.")

            def configure(self, updated, options=options, refused=refused):
                for option, _, _ in options:
                    if refused and option in updated and getattr(ctx.options, option):
                        seen["refused"] = True
                        raise exceptions.OptionsError(option + " is not in bottle's proxy")

            def running(self):
                seen["running"] = True

        StandIn.__name__ = StandIn.__qualname__ = name
        StandIn.name = module
        m = types.ModuleType("mitmproxy.addons." + module)
        setattr(m, name, StandIn)
        sys.modules[m.__name__] = m


def confdir(args):
    for a, b in zip(args, args[1:]):
        if a == "--set" and b.startswith("confdir="):
            return os.path.expanduser(b[len("confdir="):])
    return os.path.expanduser("~/.mitmproxy")


def give_ca(directory):
    """Puts the CA in place; returns the file when this launcher made it (a fallback removes it)."""
    path = os.path.join(directory, "mitmproxy-ca.pem")
    os.makedirs(directory, exist_ok=True)
    old = os.umask(0o077)
    try:
        given = os.environ.get("BOTTLE_EGRESS_CA")
        if given:
            with open(given, "rb") as f, open(path, "wb") as out:
                out.write(f.read())
            return None
        if os.path.exists(path):
            return None
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bottle egress, never used"), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "bottle")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=2)).not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        with open(path + ".tmp", "wb") as out:
            out.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()))
            out.write(cert.public_bytes(serialization.Encoding.PEM))
        os.replace(path + ".tmp", path)
        return path
    except Exception as e:
        if os.environ.get("BOTTLE_EGRESS_CA"):
            raise
        log("launcher", detail="mitmproxy makes its own CA: " + repr(e)[:300])
        return None
    finally:
        os.umask(old)


def main():
    args = sys.argv[1:]
    made = give_ca(confdir(args))
    failure = None
    try:
        stand_ins()
        from mitmproxy.tools.main import mitmdump

        sys.argv[0] = "mitmdump"
        code = mitmdump(args)
    except SystemExit as e:
        code = e.code
    except Exception as e:
        code, failure = 1, e
    # mitmdump as it is, only where the lean start ended in an error before the proxy ran and not because a
    # stand-in refused an option (which mitmdump as it is would take). An ordinary error (a port in use, an
    # unreadable addon) ends mitmdump as it is the same way, at twice the cost: the line below says which ran.
    if seen["running"] or seen["refused"] or (failure is None and (code in (None, 0) or not seen["made"])):
        if failure is not None:
            raise failure
        return code
    log("launcher", detail="mitmdump starts as it is: the lean start ended before the proxy ran (%s)" % (repr(failure)[:300] if failure else "exit %s" % code))
    if made is not None:
        os.remove(made)
    os.execvp("mitmdump", ["mitmdump", *args])


sys.exit(main())
`
