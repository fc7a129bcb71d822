/**
 * bottle's mitmproxy launcher (src/resources/egressLaunch.ts) in Debian's real
 * mitmproxy: the lean start, and what it does when that start does not fit
 * the mitmproxy it meets (mitmdump as it is, with the same addon and policy,
 * so the fence is the same, only slower to come up). And a proxy that stops
 * before it answers: apply hears it in its log, at once.
 */
import { spawnSync } from "node:child_process"
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { EGRESS_ADDON, EGRESS_ADDON_FILE, EGRESS_POLICY_FILE } from "../../src/resources/egressAddon.js"
import { EGRESS_LAUNCH, EGRESS_LAUNCH_FILE } from "../../src/resources/egressLaunch.js"
import { AGENT_IMAGE, bodyOf, bottle, docker, dockerOk, EGRESS_IMAGE, engineAvailable, ensureTestImages, scrub, uniquePrefix } from "../support/docker.js"
import { get, shJobs, statusOf } from "../support/egressPeers.js"

const available = engineAvailable()
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Runs the launcher with mitmproxy's main replaced by one that fails at once, as a release the stand-ins do not fit would. */
const MISFIT = String.raw`
import runpy, sys
import mitmproxy.tools.main as main
def misfit(args=None):
    raise AttributeError("a mitmproxy the stand-ins do not fit")
main.mitmdump = misfit
sys.argv = ["/config/${EGRESS_LAUNCH_FILE}", *sys.argv[1:]]
runpy.run_path(sys.argv[0], run_name="__main__")
`

describe.skipIf(!available)("bottle's mitmproxy launcher", () => {
  const name = `${uniquePrefix("lnch")}-egress`
  const config = mkdtempSync(join(tmpdir(), "bottle-launch-"))

  beforeAll(() => {
    ensureTestImages()
    chmodSync(config, 0o755)
    writeFileSync(join(config, EGRESS_LAUNCH_FILE), EGRESS_LAUNCH)
    writeFileSync(join(config, EGRESS_ADDON_FILE), EGRESS_ADDON)
    writeFileSync(join(config, EGRESS_POLICY_FILE), JSON.stringify({ bottle: "misfit", rules: [{ entry: "allowed.test", domain: "allowed.test", wildcard: false, ports: [80, 443] }], inject: [] }))
    writeFileSync(join(config, "misfit.py"), MISFIT)
  })
  afterAll(() => {
    dockerOk("rm", "-f", name)
    rmSync(config, { recursive: true, force: true })
  })

  it("starts mitmdump as it is when the lean start fails before the proxy runs, and says so: the same policy holds", async () => {
    docker(
      "run", "-d", "--name", name, "--user", "65534:65534", "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL",
      "-v", `${config}:/config:ro`, "-e", "HOME=/tmp", "-e", `BOTTLE_EGRESS_POLICY=/config/${EGRESS_POLICY_FILE}`,
      "--entrypoint", "python3", EGRESS_IMAGE, "/config/misfit.py",
      "--quiet", "--mode", "regular", "--listen-host", "0.0.0.0", "--listen-port", "8888",
      "--set", "connection_strategy=lazy", "--set", "confdir=/tmp/mitmproxy", "-s", `/config/${EGRESS_ADDON_FILE}`
    )
    const logged = () => docker("logs", name).split("\n").filter((l) => l.trim() !== "").map((l) => JSON.parse(l) as Record<string, unknown>)
    for (let i = 0; i < 300 && !logged().some((l) => l["event"] === "ready"); i++) await sleep(100)
    const [answer] = await shJobs(["run", "--rm", "--network", `container:${name}`, AGENT_IMAGE], `{ printf '%s' "$1"; sleep 3 & } | nc -w 2 127.0.0.1 8888`, [get("http://unlisted.test/")])
    expect(statusOf(answer!)).toBe(403)
    expect(bodyOf(answer!)).toContain("bottle 'misfit': a request to unlisted.test:80 is not allowed")
    const lines = logged()
    expect(lines[0]).toMatchObject({ event: "launcher" })
    expect(String(lines[0]!["detail"])).toMatch(/mitmdump starts as it is: .*stand-ins do not fit/)
    // mitmdump as it is made its own CA: the launcher took back the one it had made.
    const ca = docker("exec", name, "python3", "-c", "import sys; sys.stdout.write(open('/tmp/mitmproxy/mitmproxy-ca.pem').read())")
    expect(ca).toContain("BEGIN RSA PRIVATE KEY")
  })

  it("refuses proxy authentication and local mapping, and does not hand them to mitmdump as it is instead", () => {
    for (const option of ["proxyauth=any", "map_local=|example.com|/etc"]) {
      const r = spawnSync("docker", [
        "run", "--rm", "--user", "65534:65534", "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL",
        "-v", `${config}:/config:ro`, "-e", "HOME=/tmp", "-e", `BOTTLE_EGRESS_POLICY=/config/${EGRESS_POLICY_FILE}`,
        "--entrypoint", "python3", EGRESS_IMAGE, `/config/${EGRESS_LAUNCH_FILE}`,
        "--quiet", "--listen-port", "8888", "--set", "confdir=/tmp/mitmproxy", "--set", option, "-s", `/config/${EGRESS_ADDON_FILE}`
      ], { encoding: "utf8", timeout: 60_000 })
      expect(r.status, option).not.toBe(0)
      expect(r.stdout + r.stderr).toContain(`${option.split("=")[0]} is not in bottle's proxy`)
      // Neither a fallback to mitmdump as it is (which would take the option) nor a proxy that ran.
      expect(r.stdout).not.toContain('"event": "launcher"')
      expect(r.stdout).not.toContain('"event": "ready"')
    }
  })
})

describe.skipIf(!available)("a proxy that stops before it answers", () => {
  const prefix = uniquePrefix("dead")
  const home = mkdtempSync(join(tmpdir(), "bottle-home-"))
  const dir = mkdtempSync(join(tmpdir(), "bottle-dead-"))
  const image = `${prefix}-dead-mitmproxy:latest`
  const env = { BOTTLE_PREFIX: prefix, BOTTLE_HOME: home, BOTTLE_SMOLVM: "/nonexistent/smolvm", BOTTLE_READY_TIMEOUT: "60" }

  beforeAll(() => {
    ensureTestImages()
    // Its proxy says why it cannot start and exits; the probe (python3 -c) still runs.
    writeFileSync(join(dir, "Dockerfile"), `FROM ${EGRESS_IMAGE}\nCOPY python3 /usr/local/bin/python3\n`)
    writeFileSync(join(dir, "python3"), `#!/bin/sh\nif [ "$1" = /config/${EGRESS_LAUNCH_FILE} ]; then echo "bottle-test: this proxy cannot start" >&2; exit 3; fi\nexec /usr/bin/python3 "$@"\n`, { mode: 0o755 })
    docker("build", "-q", "-t", image, dir)
  })
  afterAll(() => {
    bottle(env, "reconcile", "--prune", "--yes")
    scrub(prefix)
    dockerOk("rmi", image)
    rmSync(home, { recursive: true, force: true })
    rmSync(dir, { recursive: true, force: true })
  })

  it("fails its start at once, with what it said; its agent is never started", () => {
    const spec = join(dir, "d.yaml")
    writeFileSync(spec, `apiVersion: bottle/v1\nkind: Bottle\nmetadata: { name: d }\nspec:\n  image: ${AGENT_IMAGE}\n  egress: { allow: [api.anthropic.com] }\n  sidecars: { egress: { image: "${image}" } }\n`)
    const started = Date.now()
    const r = bottle(env, "apply", "-f", spec)
    expect(r.status, r.stdout + r.stderr).toBe(1)
    // Within far less than the 60 s a proxy may take: its end is heard, not waited out.
    expect(Date.now() - started).toBeLessThan(30_000)
    expect(r.stdout).toMatch(/FAILED StartContainer \S+-d-egress-1: .*stopped before it answered on port 8888 \(bottle-test: this proxy cannot start\)/)
    expect(r.stdout).toMatch(/skipped StartContainer \S+-d-agent-1/)
    expect(docker("inspect", "--format", "{{.State.Running}}", `${prefix}-d-agent-1`)).toBe("false")
  })
})
