/**
 * Cleanup users can trust, on a real engine: every kind of leftover reaped in
 * one plan; nothing without the prefix touched; protected state kept; and
 * the faults of the issue survived.
 */
import { spawn } from "node:child_process"
import { existsSync, mkdirSync, mkdtempSync, readdirSync, symlinkSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { AGENT_IMAGE, BIN, bottle, bottleAsync, docker, dockerOk, EGRESS_IMAGE, engineAvailable, ensureTestImages, leftovers, scrub, uniquePrefix } from "../support/docker.js"
import { startFaultProxy, type FaultProxy } from "../support/faultProxy.js"

const available = engineAvailable()

const specOf = (names: ReadonlyArray<string>) =>
  names.map((n) => `apiVersion: bottle/v1\nkind: Bottle\nmetadata: { name: ${n} }\nspec:\n  image: ${AGENT_IMAGE}\n  egress: { allow: [api.anthropic.com] }\n  resources: { memory: 64m, pids: 32 }\n`).join("---\n")

const stateDir = (home: string, name: string, meta: object | undefined, preserve?: "file" | "dir" | "dangling") => {
  const d = join(home, "state", name)
  mkdirSync(join(d, "workspace"), { recursive: true })
  writeFileSync(join(d, "workspace", "notes.md"), "work")
  if (meta) writeFileSync(join(d, "metadata.json"), JSON.stringify(meta))
  if (preserve === "file") writeFileSync(join(d, ".preserve"), "")
  if (preserve === "dir") mkdirSync(join(d, ".preserve"))
  if (preserve === "dangling") symlinkSync("/nonexistent/target", join(d, ".preserve"))
  return d
}

describe.skipIf(!available)("reconcile --prune on a host full of leftovers", () => {
  const prefix = uniquePrefix("clean")
  const home = mkdtempSync(join(tmpdir(), "bottle-home-"))
  const outside = mkdtempSync(join(tmpdir(), "bottle-outside-"))
  // This host plays one the older tool used: its label-less leftovers carry the prefix, so the prefix is declared a legacy one.
  const env = { BOTTLE_PREFIX: prefix, BOTTLE_HOME: home, BOTTLE_EGRESS_IMAGE: EGRESS_IMAGE, BOTTLE_SMOLVM: "/nonexistent/smolvm", BOTTLE_LEGACY_PREFIXES: prefix }
  const foreign = { container: `keep-${prefix}-db`, network: `keep-${prefix}-net`, volume: `keep-${prefix}-vol` }

  beforeAll(() => {
    ensureTestImages()
    const run = (name: string, labels: Record<string, string> = {}, network?: string) =>
      docker("run", "-d", "--name", name, ...Object.entries(labels).flatMap(([k, v]) => ["--label", `${k}=${v}`]), ...(network ? ["--network", network] : []), AGENT_IMAGE)
    // 1. compose projects, v2 and v1 naming, with networks and a volume.
    const v2 = `${prefix}-legacy`
    docker("network", "create", "--label", `com.docker.compose.project=${v2}`, "--label", "com.docker.compose.network=default", `${v2}_default`)
    docker("volume", "create", "--label", `com.docker.compose.project=${v2}`, "--label", "com.docker.compose.volume=data", `${v2}_data`)
    run(`${v2}-agent-1`, { "com.docker.compose.project": v2, "com.docker.compose.service": "agent" }, `${v2}_default`)
    run(`${v2}-proxy-1`, { "com.docker.compose.project": v2, "com.docker.compose.service": "proxy" }, `${v2}_default`)
    const v1 = `${prefix}-older`
    run(`${v1}_agent_1`, { "com.docker.compose.project": v1, "com.docker.compose.service": "agent" })
    // 2-3. strays without compose labels; 4. smolmachines bundles.
    run(`${prefix}-stray-agent`)
    docker("create", "--name", `${prefix}-stray-created`, AGENT_IMAGE)
    docker("network", "create", `${prefix}-straynet`)
    run(`${prefix}-sidecars-vm1`, {}, undefined)
    docker("network", "create", `${prefix}-bundle-vm1`)
    // Not ours: must survive everything.
    docker("network", "create", foreign.network)
    docker("volume", "create", foreign.volume)
    run(foreign.container, { "com.docker.compose.project": "someone-else" }, foreign.network)
    // 5. state dirs: orphans (the older tool's and bottle's own), protected ones, ones bottle never made, and odd entries.
    stateDir(home, "orphan", { agent_name: "researcher", identity: "orphan", compose_project: `${prefix}-orphan-m3hxd`, backend: "docker" })
    stateDir(home, "orphan-new", { managedBy: "bottle", prefix, name: "orphan-new", set: "default" })
    stateDir(home, "orphan-no-meta", undefined)
    stateDir(home, "notes", undefined)
    stateDir(home, "other-install", { managedBy: "bottle", prefix: `${prefix}-dev`, name: "other-install", set: "default" })
    const kept = { managedBy: "bottle", prefix, set: "default" }
    stateDir(home, "kept-file", kept, "file")
    stateDir(home, "kept-dir", kept, "dir")
    stateDir(home, "kept-dangling", kept, "dangling")
    writeFileSync(join(home, "state", "a plain file"), "x")
    mkdirSync(join(home, "state", "name with spaces"))
    writeFileSync(join(outside, "precious"), "do not delete")
    symlinkSync(outside, join(home, "state", "escape"))
  })
  afterAll(() => {
    for (const c of [foreign.container]) dockerOk("rm", "-f", c)
    dockerOk("network", "rm", foreign.network)
    dockerOk("volume", "rm", foreign.volume)
    scrub(prefix)
  })

  it("previews the whole combined plan without touching anything", () => {
    const before = leftovers(prefix)
    const r = bottle(env, "reconcile", "--prune", "--dry-run")
    expect(r.status, r.stderr).toBe(0)
    const lines = r.stdout.split("\n").map((l) => l.trim())
    const kinds: ReadonlyArray<[string, string]> = [
      ["container", `${prefix}-legacy-agent-1`], ["network", `${prefix}-legacy_default`], ["volume", `${prefix}-legacy_data`],
      ["container", `${prefix}-older_agent_1`], ["container", `${prefix}-stray-agent`], ["container", `${prefix}-stray-created`],
      ["network", `${prefix}-straynet`], ["container", `${prefix}-sidecars-vm1`], ["network", `${prefix}-bundle-vm1`], ["state dir", `${home}/state/orphan`],
      ["state dir", `${home}/state/orphan-new`]
    ]
    // Each one a destroy line of its own, naming kind and resource exactly.
    for (const [kind, name] of kinds) expect(lines.some((l) => l.startsWith(`- ${kind} ${name} `) || l === `- ${kind} ${name}`), `${kind} ${name}\n${r.stdout}`).toBe(true)
    expect(r.stdout).toContain("state/a plain file: not a bottle name; left alone")
    expect(r.stdout).toContain("state/escape: a symlink, not a directory; left alone")
    // Only what bottle (or the older tool, for this prefix) made is ever a candidate.
    expect(r.stdout).toContain("state/notes: unknown (no metadata.json bottle wrote); left alone")
    expect(r.stdout).toContain("state/orphan-no-meta: unknown (no metadata.json bottle wrote); left alone")
    expect(r.stdout).toContain(`state/other-install: unknown (written by a bottle install with prefix '${prefix}-dev'); left alone`)
    expect(r.stdout).not.toContain(foreign.container)
    expect(leftovers(prefix)).toEqual(before)
  })

  it("diff --prune without a spec previews the same cleanup, with diff's exit codes", () => {
    const before = leftovers(prefix)
    const r = bottle(env, "diff", "--prune")
    expect(r.status, r.stderr).toBe(1)
    expect(r.stdout).toContain(`- container ${prefix}-stray-agent`)
    expect(r.stdout).toContain(`- state dir ${home}/state/orphan `)
    expect(leftovers(prefix)).toEqual(before)
  })

  it("with no terminal and no --yes, refuses with exit 2 and changes nothing", () => {
    const before = leftovers(prefix)
    const r = bottle(env, "reconcile", "--prune")
    expect(r.status).toBe(2)
    expect(r.stderr).toContain("--yes")
    expect(leftovers(prefix)).toEqual(before)
  })

  it("reaps every leftover, keeps what is protected and what is not its own", () => {
    const r = bottle(env, "reconcile", "--prune", "--yes")
    expect(r.status, r.stdout + r.stderr).toBe(0)
    expect(leftovers(prefix)).toEqual([])
    expect(readdirSync(join(home, "state")).sort()).toEqual(["a plain file", "escape", "kept-dangling", "kept-dir", "kept-file", "name with spaces", "notes", "orphan-no-meta", "other-install"])
    expect(existsSync(join(outside, "precious"))).toBe(true)
    expect(docker("inspect", "--format", "{{.State.Status}}", foreign.container)).toBe("running")
    expect(dockerOk("network", "inspect", foreign.network)).toBe(true)
    expect(dockerOk("volume", "inspect", foreign.volume)).toBe(true)
    const again = bottle(env, "reconcile", "--prune", "--yes")
    expect(again.status).toBe(0)
    expect(again.stdout).toContain("Plan: 0 to add, 0 to change, 0 to destroy, 3 blocked.")
    // Nothing left to reap: the preview says so with exit 0 (the preserved dirs are a safety rule doing its job).
    expect(bottle(env, "diff", "--prune").status).toBe(0)
  })
})

describe.skipIf(!available)("faults", () => {
  const prefix = uniquePrefix("fault")
  const home = mkdtempSync(join(tmpdir(), "bottle-home-"))
  const dir = mkdtempSync(join(tmpdir(), "bottle-specs-"))
  const env = { BOTTLE_PREFIX: prefix, BOTTLE_HOME: home, BOTTLE_EGRESS_IMAGE: EGRESS_IMAGE, BOTTLE_SMOLVM: "/nonexistent/smolvm" }
  let proxy: FaultProxy | undefined

  beforeAll(() => ensureTestImages())
  afterEach(async () => {
    await proxy?.close()
    proxy = undefined
  })
  afterAll(() => scrub(prefix))

  const apply = (names: ReadonlyArray<string>, ...extra: ReadonlyArray<string>) => {
    const file = join(dir, `${names.join("-") || "none"}.yaml`)
    writeFileSync(file, specOf(names))
    return bottle(env, "apply", "-f", file, ...extra)
  }

  it("an unreachable engine: exit 2 naming the endpoint, nothing deleted anywhere", () => {
    stateDir(home, "orphan", { set: "default" })
    const r = bottle({ ...env, DOCKER_HOST: `unix://${home}/no-such.sock` }, "reconcile", "--prune", "--yes")
    expect(r.status).toBe(2)
    expect(r.stderr).toContain(`unix://${home}/no-such.sock`)
    expect(existsSync(join(home, "state", "orphan"))).toBe(true)
  })

  it("a bad DOCKER_HOST is bad input: exit 2", () => {
    const r = bottle({ ...env, DOCKER_HOST: "ssh://somewhere" }, "get")
    expect(r.status).toBe(2)
    expect(r.stderr).toContain("DOCKER_HOST")
  })

  it("a removal the engine refuses: the rest is done, the report names it, exit 1, a re-run converges", async () => {
    expect(apply(["f1", "f2", "f3"]).status).toBe(0)
    proxy = await startFaultProxy()
    const victim = docker("inspect", "--format", "{{.Id}}", `${prefix}-f2-agent-1`)
    proxy.rules.push({ method: "DELETE", path: new RegExp(`/containers/${victim}`), fault: "500" })
    const r = await bottleAsync({ ...env, DOCKER_HOST: proxy.endpoint }, "reconcile", "--prune", "--yes")
    expect(r.status, r.stdout + r.stderr).toBe(1)
    expect(r.stdout).toContain(`FAILED RemoveContainer ${prefix}-f2-agent-1: `)
    expect(r.stdout).toContain("injected fault")
    expect(r.stdout).toMatch(/skipped RemoveStateDir .*f2: /)
    expect([...leftovers(prefix)].sort()).toEqual([`container ${prefix}-f2-agent-1`, `container ${prefix}-f2-egress-1`, `network ${prefix}-f2_egress`, `network ${prefix}-f2_internal`].sort())
    expect(existsSync(join(home, "state", "f2"))).toBe(true)
    expect(existsSync(join(home, "state", "f1"))).toBe(false)
    const again = bottle(env, "reconcile", "--prune", "--yes")
    expect(again.status).toBe(0)
    expect(leftovers(prefix)).toEqual([])
  })

  it("an engine that hangs on one call: that action times out, the rest is done, in bounded time", async () => {
    expect(apply(["h1", "h2"]).status).toBe(0)
    proxy = await startFaultProxy()
    const victim = docker("inspect", "--format", "{{.Id}}", `${prefix}-h1-egress-1`)
    proxy.rules.push({ method: "DELETE", path: new RegExp(`/containers/${victim}`), fault: "hang" })
    const started = Date.now()
    // Not much below the Engine's own pace: a force-removal of an agent waits for its embedded DNS
    // to let go of the queries the verification probe just made, about 3 s after apply.
    const r = await bottleAsync({ ...env, DOCKER_HOST: proxy.endpoint, BOTTLE_DOCKER_TIMEOUT: "8" }, "reconcile", "--prune", "--yes")
    expect(Date.now() - started).toBeLessThan(30_000)
    expect(r.status, r.stdout + r.stderr).toBe(1)
    expect(r.stdout).toContain(`FAILED RemoveContainer ${prefix}-h1-egress-1`)
    expect(r.stdout).toContain("did not answer")
    expect(leftovers(prefix).filter((l) => l.includes("h2"))).toEqual([])
    expect(bottle(env, "reconcile", "--prune", "--yes").status).toBe(0)
    expect(leftovers(prefix)).toEqual([])
  })

  it("an engine that hangs while listing: exit 2, nothing deleted", async () => {
    stateDir(home, "orphan2", { set: "default" })
    proxy = await startFaultProxy()
    proxy.rules.push({ method: "GET", path: /^\/v1\.41\/networks/, fault: "hang" })
    const r = await bottleAsync({ ...env, DOCKER_HOST: proxy.endpoint, BOTTLE_DOCKER_TIMEOUT: "1" }, "reconcile", "--prune", "--yes")
    expect(r.status).toBe(2)
    expect(r.stderr).toContain("did not answer")
    expect(existsSync(join(home, "state", "orphan2"))).toBe(true)
    expect(bottle(env, "reconcile", "--prune", "--yes").status).toBe(0)
  })

  it("two commands at once: no duplicates, no errors from racing; the second waits", async () => {
    const file = join(dir, "race.yaml")
    writeFileSync(file, specOf(["r1", "r2", "r3"]))
    // The second waits as long as the first takes (its apply proves three fences).
    const patient = { ...env, BOTTLE_LOCK_WAIT: "300" }
    const [a, b] = await Promise.all([bottleAsync(patient, "apply", "-f", file), bottleAsync(patient, "apply", "-f", file)])
    expect([a.status, b.status], a.stdout + a.stderr + b.stdout + b.stderr).toEqual([0, 0])
    // One after the other: one did the work, the other, after waiting, found it done.
    expect([a.stdout, b.stdout].filter((o) => o.includes("No changes.")), a.stdout + b.stdout).toHaveLength(1)
    expect([a.stdout, b.stdout].filter((o) => o.includes("Plan: 15 to add")), a.stdout + b.stdout).toHaveLength(1)
    const names = leftovers(prefix)
    expect(names.filter((n) => n.startsWith("container")).length).toBe(6)
    expect(new Set(names).size).toBe(names.length)
    expect(docker("network", "ls", "--filter", `name=${prefix}-r1_internal`, "--format", "{{.ID}}").split("\n")).toHaveLength(1)
    const [c, d] = await Promise.all([bottleAsync(patient, "reconcile", "--prune", "--yes"), bottleAsync(patient, "reconcile", "--prune", "--yes")])
    expect([c.status, d.status], c.stdout + c.stderr + d.stdout + d.stderr).toEqual([0, 0])
    expect([c.stdout, d.stdout].filter((o) => o.includes("No changes.")), c.stdout + d.stdout).toHaveLength(1)
    expect(leftovers(prefix)).toEqual([])
  })

  it("a live lock holder makes the second command exit 2 naming it", async () => {
    const file = join(dir, "slow.yaml")
    writeFileSync(file, specOf(["s1"]))
    proxy = await startFaultProxy()
    proxy.rules.push({ method: "GET", path: /^\/v1\.41\/images\/json/, fault: "hang" })
    const slow = bottleAsync({ ...env, DOCKER_HOST: proxy.endpoint, BOTTLE_DOCKER_TIMEOUT: "6" }, "apply", "-f", file)
    await new Promise((r) => setTimeout(r, 1500))
    const second = await bottleAsync({ ...env, BOTTLE_LOCK_WAIT: "1" }, "apply", "-f", file)
    expect(second.status).toBe(2)
    expect(second.stderr).toMatch(/holds the lock: pid \d+ .*'bottle apply'/)
    // A bad spec does not wait for the lock, however patient the command: it is bad input at once.
    const bad = join(dir, "bad.yaml")
    writeFileSync(bad, specOf(["s1"]).replace("pids: 32", "pids: lots"))
    let slowEnded = false
    void slow.then(() => { slowEnded = true })
    const third = await bottleAsync({ ...env, BOTTLE_LOCK_WAIT: "60" }, "apply", "-f", bad)
    expect(third.status, third.stderr).toBe(2)
    expect(third.stderr).toContain(`${bad}:`)
    // Answered while the lock was still held: it did not wait for it.
    expect(slowEnded).toBe(false)
    await slow
  })

  it("Ctrl-C in the middle of apply: nothing new starts, the report says what was done and not started, the lock is released, exit 130", async () => {
    const names = Array.from({ length: 4 }, (_, i) => `int${i}`)
    const file = join(dir, "interrupt.yaml")
    writeFileSync(file, specOf(names))
    const child = spawn(process.execPath, [BIN, "apply", "-f", file, "--concurrency", "2"], { env: { ...process.env, ...env, BOTTLE_PROBE_IMAGE: EGRESS_IMAGE, NO_COLOR: "1" }, stdio: ["ignore", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (d) => (stdout += d))
    child.stderr.on("data", (d) => (stderr += d))
    // Once it has started acting.
    for (let i = 0; i < 400 && !stdout.includes("done "); i++) await new Promise((r) => setTimeout(r, 25))
    child.kill("SIGINT")
    const code = await new Promise<number | null>((r) => child.on("close", (c) => r(c)))
    expect(code, stdout + stderr).toBe(130)
    expect(stdout).toMatch(/^done /m)
    expect(stdout).toMatch(/^skipped \S+ \S+: interrupted before it started$/m)
    expect(stdout).toMatch(/\d+ done, \d+ failed, \d+ skipped\./)
    expect(stderr).toContain("SIGINT: interrupted")
    expect(existsSync(join(home, "bottle.lock"))).toBe(false)
    // The next run finishes the job.
    const again = bottle(env, "apply", "-f", file)
    expect(again.status, again.stdout + again.stderr).toBe(0)
    expect(bottle(env, "diff", "-f", file).status).toBe(0)
    expect(bottle(env, "reconcile", "--prune", "--yes").status).toBe(0)
  })

  it("Ctrl-C before anything changed: exit 130 at once, nothing done, lock released", async () => {
    proxy = await startFaultProxy()
    proxy.rules.push({ method: "GET", path: /^\/v1\.41\/images\/json/, fault: "hang" })
    const file = join(dir, "early.yaml")
    writeFileSync(file, specOf(["early"]))
    const child = spawn(process.execPath, [BIN, "apply", "-f", file], { env: { ...process.env, ...env, DOCKER_HOST: proxy.endpoint }, stdio: ["ignore", "pipe", "pipe"] })
    let stderr = ""
    child.stderr.on("data", (d) => (stderr += d))
    await new Promise((r) => setTimeout(r, 1500))
    const started = Date.now()
    child.kill("SIGINT")
    const code = await new Promise<number | null>((r) => child.on("close", (c) => r(c)))
    expect(code).toBe(130)
    expect(Date.now() - started).toBeLessThan(5_000)
    expect(stderr).toContain("SIGINT: interrupted before anything was changed.")
    expect(existsSync(join(home, "bottle.lock"))).toBe(false)
    expect(leftovers(prefix).filter((l) => l.includes("early"))).toEqual([])
  })

  for (const command of ["apply", "reconcile"] as const) {
    it(`SIGKILL in the middle of ${command}: the next run converges with no duplicates`, async () => {
      const names = Array.from({ length: 6 }, (_, i) => `k${command[0]}${i}`)
      const file = join(dir, `kill-${command}.yaml`)
      writeFileSync(file, specOf(names))
      if (command === "reconcile") expect(bottle(env, "apply", "-f", file).status).toBe(0)
      const args = command === "apply" ? ["apply", "-f", file] : ["reconcile", "--prune", "--yes"]
      const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, stdio: "ignore" })
      // Kill it once it has started acting: wait for the first resource to appear.
      for (let i = 0; i < 200; i++) {
        const n = leftovers(prefix).length
        if ((command === "apply" && n > 2) || (command === "reconcile" && n < 6 * 4)) break
        await new Promise((r) => setTimeout(r, 25))
      }
      const atKill = leftovers(prefix).length
      child.kill("SIGKILL")
      const [, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((r) => child.on("close", (c, s) => r([c, s])))
      // It was cut off mid-way: killed, not finished, and after it had started changing things.
      expect(signal).toBe("SIGKILL")
      if (command === "apply") expect(atKill).toBeGreaterThan(0)
      else expect(atKill).toBeLessThan(6 * 4)
      const rerun = command === "apply" ? bottle(env, "apply", "-f", file) : bottle(env, "reconcile", "--prune", "--yes")
      expect(rerun.status, rerun.stdout + rerun.stderr).toBe(0)
      if (command === "apply") {
        const left = leftovers(prefix)
        expect(left.filter((l) => l.startsWith("container")).length).toBe(12)
        expect(left.filter((l) => l.startsWith("network")).length).toBe(12)
        expect(bottle(env, "diff", "-f", file).status).toBe(0)
        expect(bottle(env, "reconcile", "--prune", "--yes").status).toBe(0)
      }
      expect(leftovers(prefix)).toEqual([])
      expect(readdirSync(join(home, "state")).filter((d) => names.includes(d))).toEqual([])
    })
  }

  it("SIGKILL while a state dir is being removed: what is left still says it is bottle's, and the next run removes it", async () => {
    // A workspace big enough that its removal is under way when the kill comes.
    const d = stateDir(home, "bigdir", { managedBy: "bottle", prefix, name: "bigdir", backend: "docker", set: "default" })
    const ws = join(d, "workspace")
    for (let i = 0; i < 400; i++) {
      mkdirSync(join(ws, `d${i}`))
      for (let j = 0; j < 100; j++) writeFileSync(join(ws, `d${i}`, `f${j}`), "x")
    }
    const entries = () => { try { return readdirSync(ws).length } catch { return -1 } }
    const child = spawn(process.execPath, [BIN, "reconcile", "--prune", "--yes"], { env: { ...process.env, ...env }, stdio: "ignore" })
    const closed = new Promise<NodeJS.Signals | null>((r) => child.on("close", (_c, s) => r(s)))
    for (let i = 0; i < 6000 && entries() === 401; i++) await new Promise((r) => setTimeout(r, 2))
    child.kill("SIGKILL")
    expect(await closed).toBe("SIGKILL")
    // Cut off part way: the workspace partly gone, the dir still there.
    expect(existsSync(d)).toBe(true)
    expect(entries()).toBeLessThan(401)
    // Its metadata.json goes last: the dir is still bottle's, not "unknown, left alone".
    expect(existsSync(join(d, "metadata.json"))).toBe(true)
    const rerun = bottle(env, "reconcile", "--prune", "--yes")
    expect(rerun.status, rerun.stdout + rerun.stderr).toBe(0)
    expect(existsSync(d)).toBe(false)
  })
})

describe.skipIf(!available)("sets", () => {
  const prefix = uniquePrefix("sets")
  const home = mkdtempSync(join(tmpdir(), "bottle-home-"))
  const dir = mkdtempSync(join(tmpdir(), "bottle-specs-"))
  const env = { BOTTLE_PREFIX: prefix, BOTTLE_HOME: home, BOTTLE_EGRESS_IMAGE: EGRESS_IMAGE, BOTTLE_SMOLVM: "/nonexistent/smolvm" }
  afterAll(() => scrub(prefix))

  it("apply --prune --set A never prunes set B; reconcile --prune reaps both", () => {
    ensureTestImages()
    const a = join(dir, "a.yaml")
    const b = join(dir, "b.yaml")
    writeFileSync(a, specOf(["in-a"]))
    writeFileSync(b, specOf(["in-b"]))
    expect(bottle(env, "apply", "-f", a, "--set", "team-a").status).toBe(0)
    expect(bottle(env, "apply", "-f", b, "--set", "team-b").status).toBe(0)
    // in-b is idle (nothing of it runs): only the set rule protects its state dir now.
    for (const l of leftovers(prefix).filter((x) => x.includes("in-b") && x.startsWith("container"))) docker("rm", "-f", l.split(" ")[1]!)
    for (const l of leftovers(prefix).filter((x) => x.includes("in-b") && x.startsWith("network"))) docker("network", "rm", l.split(" ")[1]!)
    writeFileSync(a, specOf(["other-a"]))
    const r = bottle(env, "apply", "-f", a, "--set", "team-a", "--prune", "--yes")
    expect(r.status, r.stdout + r.stderr).toBe(0)
    const left = leftovers(prefix)
    expect(left.some((l) => l.includes("in-a"))).toBe(false)
    expect(left.filter((l) => l.includes("in-b"))).toEqual([])
    expect(existsSync(join(home, "state", "in-b", "metadata.json"))).toBe(true)
    expect(bottle(env, "reconcile", "--prune", "--yes").status).toBe(0)
    expect(leftovers(prefix)).toEqual([])
    expect(readdirSync(join(home, "state"))).toEqual([])
  })
})
