/**
 * bottle on a real Podman (Debian's, rootful, `podman system service` on a
 * private socket made by .ci/ensure-podman.sh), through its Docker-compatible
 * API. Made as bottle makes it, the fence holds and the probe proves it; the
 * internal network Podman's compatible API alone would give (a gateway on the
 * host, a resolver answering outside names) is seen as drift and caught by
 * the probe.
 */
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { spawnSync } from "node:child_process"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { AGENT_IMAGE, bottle, EGRESS_IMAGE, ROOT, uniquePrefix } from "../support/docker.js"

const SOCKET = process.env["BOTTLE_PODMAN_SOCKET"] ?? "/run/bottle-podman/podman.sock"
const UNAVAILABLE = join(ROOT, ".ci", "state", "podman-unavailable")

/** The docker CLI pointed at Podman's socket. */
const podman = (...args: ReadonlyArray<string>) => {
  const r = spawnSync("docker", ["-H", `unix://${SOCKET}`, ...args], { encoding: "utf8" })
  if (r.status !== 0) throw new Error(`docker -H podman ${args.join(" ")}: ${r.stderr}`)
  return r.stdout.trim()
}
const podmanOk = (...args: ReadonlyArray<string>) => spawnSync("docker", ["-H", `unix://${SOCKET}`, ...args], { stdio: "ignore" }).status === 0

/** Whether Podman answers; if not, why, loudly (and under CI=true a failure unless set-up found it cannot run here). */
const available = (() => {
  const answers = spawnSync("docker", ["-H", `unix://${SOCKET}`, "version", "--format", "{{.Server.Version}}"], { encoding: "utf8" })
  if (answers.status === 0 && /podman/i.test(spawnSync("docker", ["-H", `unix://${SOCKET}`, "version"], { encoding: "utf8" }).stdout)) return true
  const why = existsSync(UNAVAILABLE) ? readFileSync(UNAVAILABLE, "utf8").trim() : `nothing answers on ${SOCKET} (run .ci/ensure-podman.sh)`
  const msg = `\n!!! PODMAN TESTS SKIPPED: ${why} !!!\n`
  if (process.env["CI"] === "true" && !existsSync(UNAVAILABLE)) throw new Error(`${msg}Under CI=true Podman must run where set-up did not find it impossible.`)
  process.stderr.write(msg)
  return false
})()

describe.skipIf(!available)("bottle on Podman", () => {
  const prefix = uniquePrefix("pod")
  const home = mkdtempSync(join(tmpdir(), "bottle-home-"))
  const env = { DOCKER_HOST: `unix://${SOCKET}`, BOTTLE_PREFIX: prefix, BOTTLE_HOME: home, BOTTLE_EGRESS_IMAGE: EGRESS_IMAGE, BOTTLE_PROBE_IMAGE: EGRESS_IMAGE, BOTTLE_SMOLVM: "/nonexistent/smolvm" }
  const file = join(mkdtempSync(join(tmpdir(), "bottle-specs-")), "p.yaml")
  const agent = `${prefix}-p-agent-1`
  const internal = `${prefix}-p_internal`
  afterAll(() => {
    bottle(env, "reconcile", "--prune", "--yes")
  })

  it("applies a bottle whose fence holds, proven from inside; diff is then in sync", () => {
    writeFileSync(file, `apiVersion: bottle/v1\nkind: Bottle\nmetadata: { name: p }\nspec:\n  image: ${AGENT_IMAGE}\n  egress: { allow: [api.anthropic.com] }\n  resources: { memory: 128m, pids: 64 }\n`)
    const r = bottle(env, "apply", "-f", file)
    expect(r.status, r.stdout + r.stderr).toBe(0)
    expect(r.stdout).toContain("fence holds")
    const v = bottle(env, "verify", "p", "-o", "json")
    expect(v.status, v.stdout).toBe(0)
    const props = JSON.parse(v.stdout).bottles[0].properties as Array<{ name: string; ok: boolean; detail: string }>
    expect(props.filter((p) => !p.ok)).toEqual([])
    expect(props.map((p) => p.name)).toEqual(expect.arrayContaining(["proxy answers", "proxy refuses a host not allowed", "host and gateways unreachable", "no outside DNS", "no IPv6 address"]))
    // The internal network was made through Podman's own API: no gateway, no resolver.
    expect(JSON.parse(podman("network", "inspect", internal, "--format", "{{json .IPAM.Config}}"))[0].Gateway ?? "<nil>").toBe("<nil>")
    expect(podman("exec", agent, "cat", "/etc/hosts")).toMatch(/host\.containers\.internal/)
    const d = bottle(env, "diff", "-f", file)
    expect(d.status, d.stdout).toBe(0)
  })

  it("an internal network re-made through the compatible API alone (gateway, resolver) is drift, and the probe catches what it opens", () => {
    const labels = Object.entries(JSON.parse(podman("network", "inspect", internal, "--format", "{{json .Labels}}")) as Record<string, string>).flatMap(([k, v]) => ["--label", `${k}=${v}`])
    podman("rm", "-f", agent, `${prefix}-p-egress-1`)
    podman("network", "rm", internal)
    podman("network", "create", "--internal", ...labels, internal)
    // Put the bottle's containers back on it by hand, as they were (bottle's labels and all): only what the probe sees can tell.
    const d = bottle(env, "diff", "-f", file)
    expect(d.status, d.stdout).toBe(1)
    expect(d.stdout).toMatch(/-\/\+ network \S+-p_internal {2}\(drift: the host has an address \(a gateway\) on it\)/)
    podman("run", "-d", "--name", agent, "--network", internal, "--label", "dev.bottle.managed-by=bottle", "--label", "dev.bottle.bottle=p",
      "--label", "com.docker.compose.project=" + `${prefix}-p`, "--label", "com.docker.compose.service=agent", AGENT_IMAGE)
    const v = bottle(env, "verify", "p", "-o", "json")
    expect(v.status, v.stdout).toBe(1)
    const failed = (JSON.parse(v.stdout).bottles[0].properties as Array<{ name: string; ok: boolean }>).filter((p) => !p.ok).map((p) => p.name)
    expect(failed).toEqual(expect.arrayContaining(["host and gateways unreachable", "no outside DNS"]))
    // apply repairs it and proves it again.
    const a = bottle(env, "apply", "-f", file, "--yes")
    expect(a.status, a.stdout + a.stderr).toBe(0)
    expect(a.stdout).toContain("fence holds")
    expect(podmanOk("network", "inspect", internal)).toBe(true)
  })

  it("cleans up to nothing", () => {
    const r = bottle(env, "reconcile", "--prune", "--yes")
    expect(r.status, r.stdout + r.stderr).toBe(0)
    expect(podman("ps", "-a", "--filter", `name=${prefix}`, "--format", "{{.Names}}")).toBe("")
    expect(podman("network", "ls", "--filter", `name=${prefix}`, "--format", "{{.Name}}")).toBe("")
  })
})
