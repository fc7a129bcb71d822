/**
 * The fake `smolvm` (tests/fake-smolvm/smolvm) against the command-line contract
 * in /work/shared/smolvm-cli.md: flags, `ls --json` shape, exit codes, and what
 * goes to stdout and to stderr. Every test has its own state file.
 */
import { afterAll, describe, expect, it } from "vitest"
import { spawn, spawnSync } from "node:child_process"
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const FAKE = join(dirname(fileURLToPath(import.meta.url)), "fake-smolvm", "smolvm")

/** The keys of the contract's example `ls --json` element (smolvm 1.9). */
const CONTRACT_KEYS = [
  "cmd", "cpus", "created_at", "cuda", "cuda_fork_pool_size", "cuda_vram_limit_mib", "entrypoint", "ephemeral",
  "forkable", "forkpoint_held", "gpu", "gpu_vram_mib", "health_cmd", "health_interval_secs", "health_retries",
  "health_startup_grace_secs", "health_timeout_secs", "image", "labels", "memory_mib", "mounts", "name", "network",
  "overlay_gb", "pid", "ports", "restart_count", "restart_max_retries", "restart_policy", "state", "storage_gb"
]

interface Result { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }
interface Sandbox { dir: string; state: string; log: string }
interface Machine { name: string; state: string; pid: number | null; labels: Record<string, string>; [key: string]: unknown }

/** The environment without any FAKE_SMOLVM_* a developer may have exported. */
const baseEnv = (): NodeJS.ProcessEnv =>
  Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("FAKE_SMOLVM_")))

const sandboxes: Array<string> = []
afterAll(() => { for (const dir of sandboxes) rmSync(dir, { recursive: true, force: true }) })

const sandbox = (): Sandbox => {
  const dir = mkdtempSync(join(tmpdir(), "fake-smolvm-test-"))
  sandboxes.push(dir)
  return { dir, state: join(dir, "state.json"), log: join(dir, "calls.log") }
}

const envFor = (sb: Sandbox, extra: Record<string, string> = {}): NodeJS.ProcessEnv =>
  ({ ...baseEnv(), FAKE_SMOLVM_STATE: sb.state, ...extra })

/** Runs the fake to completion; stdin is a pipe (never a terminal) holding `input`. */
const run = (sb: Sandbox, args: Array<string>, opts: { env?: Record<string, string>; input?: string; timeoutMs?: number } = {}): Result => {
  const r = spawnSync(FAKE, args, { env: envFor(sb, opts.env), input: opts.input ?? "", encoding: "utf8", timeout: opts.timeoutMs ?? 20_000 })
  if (r.error) throw r.error
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr }
}

/** Runs the fake without blocking, for concurrent invocations. */
const runAsync = (sb: Sandbox, args: Array<string>, extra: Record<string, string> = {}): Promise<Result> =>
  new Promise((resolve, reject) => {
    const child = spawn(FAKE, args, { env: envFor(sb, extra), stdio: ["ignore", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (d: Buffer) => { stdout += d.toString() })
    child.stderr.on("data", (d: Buffer) => { stderr += d.toString() })
    child.on("error", reject)
    child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr }))
  })

/** Starts the fake, checks it is still running after `ms`, kills it; resolves to what it printed. */
const expectHangs = (sb: Sandbox, args: Array<string>, extra: Record<string, string>, ms = 800): Promise<Result> =>
  new Promise((resolve, reject) => {
    const child = spawn(FAKE, args, { env: envFor(sb, extra), stdio: ["ignore", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    let exitedEarly = false
    child.stdout.on("data", (d: Buffer) => { stdout += d.toString() })
    child.stderr.on("data", (d: Buffer) => { stderr += d.toString() })
    child.on("error", reject)
    child.on("exit", () => { exitedEarly = true })
    setTimeout(() => {
      if (exitedEarly) return reject(new Error(`smolvm ${args.join(" ")} returned instead of hanging: ${stderr}`))
      child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr }))
      child.kill("SIGTERM")
    }, ms)
  })

const ok = (r: Result): Result => {
  expect(r.stderr, `stderr of a command expected to succeed`).not.toMatch(/^Error:/m)
  expect(r.code).toBe(0)
  return r
}

/** A smolvm error: exactly one line `Error: …` on stderr, nothing on stdout, exit 1. */
const expectError = (r: Result, message?: string | RegExp): void => {
  expect(r.code).toBe(1)
  expect(r.stdout).toBe("")
  expect(r.stderr).toMatch(/^Error: [^\n]+\n$/)
  if (typeof message === "string") expect(r.stderr).toBe(`Error: ${message}\n`)
  else if (message) expect(r.stderr).toMatch(message)
}

/** A clap argument error: usage on stderr, nothing on stdout, exit 2. */
const expectUsageError = (r: Result): void => {
  expect(r.code).toBe(2)
  expect(r.stdout).toBe("")
  expect(r.stderr).toMatch(/^error: /)
  expect(r.stderr).toContain("Usage: smolvm")
}

const ls = (sb: Sandbox, env: Record<string, string> = {}): Array<Machine> => {
  const r = ok(run(sb, ["machine", "ls", "--json"], { env }))
  const parsed: unknown = JSON.parse(r.stdout)
  expect(Array.isArray(parsed)).toBe(true)
  return parsed as Array<Machine>
}

const machine = (sb: Sandbox, name: string): Machine | undefined => ls(sb).find((m) => m.name === name)

const create = (sb: Sandbox, name: string, ...options: Array<string>): Result => ok(run(sb, ["machine", "create", "--name", name, ...options]))
const start = (sb: Sandbox, name: string): Result => ok(run(sb, ["machine", "start", "--name", name]))

describe("fake smolvm: --version", () => {
  it("prints `smolvm 1.9.0` by default and exits 0", () => {
    const r = run(sandbox(), ["--version"])
    expect(r).toMatchObject({ code: 0, stdout: "smolvm 1.9.0\n", stderr: "" })
  })

  it("reports FAKE_SMOLVM_VERSION verbatim, whatever it is", () => {
    const sb = sandbox()
    for (const v of ["1.8.0", "0.9.0", "garbage"]) {
      expect(run(sb, ["--version"], { env: { FAKE_SMOLVM_VERSION: v } })).toMatchObject({ code: 0, stdout: `smolvm ${v}\n` })
    }
  })
})

describe("fake smolvm: create and ls --json", () => {
  it("prints [] when there are no machines", () => {
    const sb = sandbox()
    const r = ok(run(sb, ["machine", "ls", "--json"]))
    expect(r.stdout).toBe("[]\n")
    expect(ok(run(sb, ["machine", "list", "--json"])).stdout).toBe("[]\n")
  })

  it("lists a new machine with every key of the contract's element, state created, no pid", () => {
    const sb = sandbox()
    const before = Math.floor(Date.now() / 1000)
    create(sb, "plain")
    const after = Math.floor(Date.now() / 1000)
    const r = ok(run(sb, ["machine", "ls", "--json"]))
    expect(r.stdout).toMatch(/^\[\n  \{\n    "/) // pretty-printed
    const [m] = JSON.parse(r.stdout) as Array<Machine>
    expect(Object.keys(m!)).toEqual(expect.arrayContaining(CONTRACT_KEYS))
    expect(m).toMatchObject({
      name: "plain", state: "created", pid: null, labels: {}, image: null, cpus: 4, memory_mib: 8192,
      network: false, mounts: 0, ports: 0, ephemeral: false, cmd: [], entrypoint: [], restart_policy: "never",
      env: {}, allow_cidrs: [], volumes: [], workdir: null
    })
    expect(m!["created_at"]).toBeGreaterThanOrEqual(before)
    expect(m!["created_at"]).toBeLessThanOrEqual(after)
  })

  it("stores image, resources, labels, env, egress, volumes and workdir", () => {
    const sb = sandbox()
    const host = join(sb.dir, "src")
    mkdirSync(host)
    create(sb, "full",
      "-I", "ghcr.io/example/agent:1", "--cpus", "2", "--mem", "1024",
      "--label", "dev.bottle.managed-by=bottle", "--label", "dev.bottle.spec-hash=abc=123",
      "-e", "HTTP_PROXY=http://10.0.0.2:8888", "--env", "EMPTY=",
      "--allow-cidr", "10.0.0.2", "--allow-cidr", "192.168.0.0/16",
      "-v", `${host}:/workspace`, "--volume", `${host}:/ro:ro`, "-w", "/workspace")
    expect(machine(sb, "full")).toMatchObject({
      image: "ghcr.io/example/agent:1",
      cpus: 2,
      memory_mib: 1024,
      labels: { "dev.bottle.managed-by": "bottle", "dev.bottle.spec-hash": "abc=123" },
      env: { HTTP_PROXY: "http://10.0.0.2:8888", EMPTY: "" },
      network: true, // --allow-cidr implies it
      allow_cidrs: ["10.0.0.2/32", "192.168.0.0/16"],
      mounts: 2,
      volumes: [
        { host: realpathSync(host), guest: "/workspace", read_only: false },
        { host: realpathSync(host), guest: "/ro", read_only: true }
      ],
      workdir: "/workspace"
    })
  })

  it("accepts -n, --name=N, --net alone, and a workload after --", () => {
    const sb = sandbox()
    ok(run(sb, ["machine", "create", "-n", "short", "--net"]))
    ok(run(sb, ["machine", "create", "--name=eq", "--", "sleep", "infinity"]))
    expect(machine(sb, "short")).toMatchObject({ network: true, allow_cidrs: [] })
    expect(machine(sb, "eq")).toMatchObject({ cmd: ["sleep", "infinity"], network: false })
  })

  it("rejects a malformed --allow-cidr, --cpus or --mem as an argument error (exit 2)", () => {
    const sb = sandbox()
    for (const bad of [["--allow-cidr", "10.0.0.0/33"], ["--allow-cidr", "300.1.1.1"], ["--allow-cidr", "example.com"], ["--cpus", "many"], ["--mem", "-5"]]) {
      expectUsageError(run(sb, ["machine", "create", "--name", "m", ...bad]))
    }
    expect(ls(sb)).toEqual([])
  })

  it("fails with `machine 'N' already exists` when N exists, and keeps the first", () => {
    const sb = sandbox()
    create(sb, "twice", "--label", "first=yes")
    const r = run(sb, ["machine", "create", "--name", "twice", "--label", "first=no"])
    expectError(r, /machine 'twice' already exists\n$/)
    expect(machine(sb, "twice")!.labels).toEqual({ first: "yes" })
  })

  it("enforces validate_vm_name", () => {
    const sb = sandbox()
    const invalid = ["", "-lead", "_lead", "trail-", "double--dash", "dot.ted", "spa ce", "slash/y", "é", "x".repeat(129)]
    for (const name of invalid) expectError(run(sb, ["machine", "create", `--name=${name}`]), /invalid machine name: /)
    const valid = ["a", "9lives", "Mixed_Case-1", "under_score_", "x".repeat(128)]
    for (const name of valid) create(sb, name)
    expect(ls(sb).map((m) => m.name).sort()).toEqual([...valid].sort())
  })

  it("lists machines in an order nobody can depend on", () => {
    const sb = sandbox()
    for (const n of ["m1", "m2", "m3", "m4", "m5", "m6"]) create(sb, n)
    const orders = new Set<string>()
    for (let k = 0; k < 10; k++) orders.add(ls(sb).map((m) => m.name).join(","))
    expect(orders.size).toBeGreaterThan(1)
  })

  it("prints a human table without --json", () => {
    const sb = sandbox()
    expect(ok(run(sb, ["machine", "ls"])).stdout).toBe("No machines found\n")
    create(sb, "tabled")
    const r = ok(run(sb, ["machine", "ls"]))
    expect(r.stdout).toMatch(/^NAME\s+STATE/)
    expect(r.stdout).toMatch(/tabled\s+created/)
  })

  it("fills in defaults for records seeded straight into the state file", () => {
    const sb = sandbox()
    writeFileSync(sb.state, JSON.stringify({ machines: { odd: { state: "unreachable", pid: 4242, ephemeral: true } } }))
    const [m] = ls(sb)
    expect(Object.keys(m!)).toEqual(expect.arrayContaining(CONTRACT_KEYS))
    expect(m).toMatchObject({ name: "odd", state: "unreachable", pid: 4242, ephemeral: true, labels: {} })
  })

  it("uses $TMPDIR/fake-smolvm-state.json when FAKE_SMOLVM_STATE is unset", () => {
    const sb = sandbox()
    const env: NodeJS.ProcessEnv = { ...baseEnv(), TMPDIR: sb.dir }
    const r = spawnSync(FAKE, ["machine", "create", "--name", "tmp"], { env, encoding: "utf8" })
    expect(r.status).toBe(0)
    expect(existsSync(join(sb.dir, "fake-smolvm-state.json"))).toBe(true)
  })
})

describe("fake smolvm: start and stop", () => {
  it("starts a machine, and starting it again is a note on stdout with exit 0", () => {
    const sb = sandbox()
    create(sb, "vm")
    start(sb, "vm")
    const running = machine(sb, "vm")!
    expect(running.state).toBe("running")
    expect(typeof running.pid).toBe("number")
    const again = ok(run(sb, ["machine", "start", "--name", "vm"]))
    expect(again.stdout).toMatch(/already running/)
    expect(again.stderr).toBe("")
    expect(machine(sb, "vm")).toMatchObject({ state: "running", pid: running.pid })
  })

  it("stops a machine keeping its stale pid; stopping again, or a never-started one, is a note with exit 0", () => {
    const sb = sandbox()
    create(sb, "vm")
    create(sb, "fresh")
    ok(run(sb, ["machine", "start", "-n", "vm"]))
    const pid = machine(sb, "vm")!.pid
    ok(run(sb, ["machine", "stop", "--name", "vm"]))
    expect(machine(sb, "vm")).toMatchObject({ state: "stopped", pid })
    for (const name of ["vm", "fresh"]) {
      const r = ok(run(sb, ["machine", "stop", "--name", name]))
      expect(r.stdout).toMatch(/not running/)
      expect(r.stderr).toBe("")
    }
    expect(machine(sb, "fresh")).toMatchObject({ state: "created", pid: null })
    // A stopped machine starts again.
    start(sb, "vm")
    expect(machine(sb, "vm")!.state).toBe("running")
  })

  it("targets the machine called default when --name is left out (create, start, stop, delete)", () => {
    const sb = sandbox()
    ok(run(sb, ["machine", "create"]))
    expect(machine(sb, "default")!.state).toBe("created")
    ok(run(sb, ["machine", "start"]))
    expect(machine(sb, "default")!.state).toBe("running")
    ok(run(sb, ["machine", "stop"]))
    expect(machine(sb, "default")!.state).toBe("stopped")
    ok(run(sb, ["machine", "delete", "-f"]))
    expect(machine(sb, "default")).toBeUndefined()
  })
})

describe("fake smolvm: unknown machines", () => {
  for (const args of [["start", "--name", "ghost"], ["stop", "--name", "ghost"], ["delete", "--name", "ghost", "-f"], ["rm", "-n", "ghost", "--force"]]) {
    it(`machine ${args.join(" ")}: \`Error: vm not found: ghost\`, exit 1`, () => {
      const sb = sandbox()
      create(sb, "real")
      const r = run(sb, ["machine", ...args])
      expect(r).toEqual({ code: 1, signal: null, stdout: "", stderr: "Error: vm not found: ghost\n" })
      expect(ls(sb).map((m) => m.name)).toEqual(["real"])
    })
  }
})

describe("fake smolvm: delete", () => {
  it("without -f and without a terminal prints Cancelled, exits 0 and deletes nothing", () => {
    const sb = sandbox()
    create(sb, "keep")
    for (const input of ["", "y\n", "yes\n"]) {
      const r = run(sb, ["machine", "delete", "--name", "keep"], { input })
      expect(r.code).toBe(0)
      expect(r.stdout).toMatch(/^Cancelled$/m)
      expect(r.stderr).toContain("Delete machine 'keep'? [y/N]")
      expect(machine(sb, "keep")).toBeDefined()
    }
  })

  it("without -f stops a running machine first, as smolvm does, but keeps it", () => {
    const sb = sandbox()
    create(sb, "keep")
    start(sb, "keep")
    const r = run(sb, ["machine", "delete", "--name", "keep"])
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/Cancelled/)
    expect(machine(sb, "keep")!.state).toBe("stopped")
  })

  it("with -f removes a running machine, and rm/--force work the same", () => {
    const sb = sandbox()
    for (const n of ["one", "two", "three"]) create(sb, n)
    start(sb, "one")
    ok(run(sb, ["machine", "delete", "--name", "one", "-f"]))
    ok(run(sb, ["machine", "rm", "--name", "two", "--force"]))
    ok(run(sb, ["machine", "delete", "-f", "-n", "three"]))
    expect(ls(sb)).toEqual([])
  })
})

describe("fake smolvm: argument errors exit 2 with usage on stderr", () => {
  const cases: Array<Array<string>> = [
    ["machine", "create", "--name", "a", "--bogus"],
    ["machine", "create", "positional-name"],
    ["machine", "frobnicate"],
    ["machine", "start", "--name"],
    ["machine", "start", "--name", "--json"],
    ["machine", "delete", "--name", "a", "--name", "b", "-f"],
    ["machine", "exec", "-n", "a", "--", "true"],
    ["machine", "exec", "--name", "a"],
    ["machine", "ls", "--yaml"],
    ["machine", "cp", "only-one"],
    ["frobnicate"],
    ["--bogus"]
  ]
  for (const args of cases) {
    it(args.join(" "), () => {
      const sb = sandbox()
      expectUsageError(run(sb, args))
      expect(existsSync(sb.state)).toBe(false)
    })
  }
})

describe("fake smolvm: exec and cp", () => {
  it("exec needs a running machine (only --name, not -n)", () => {
    const sb = sandbox()
    create(sb, "vm")
    expectError(run(sb, ["machine", "exec", "--name", "vm", "--", "true"]), /machine 'vm' is not running/)
    expectError(run(sb, ["machine", "exec", "--name", "nope", "--", "true"]), /machine 'nope' is not running/)
    start(sb, "vm")
    const r = ok(run(sb, ["machine", "exec", "--name", "vm", "--", "echo", "hello"]))
    expect(r.stdout).toBe("echo hello\n") // not run on the host by default
    expect(run(sb, ["machine", "exec", "--name", "vm", "--", "true"], { env: { FAKE_SMOLVM_EXEC_EXIT: "3" } }).code).toBe(3)
  })

  it("with FAKE_SMOLVM_EXEC=host runs the command and passes on its exit code, 124 on --timeout", () => {
    const sb = sandbox()
    create(sb, "vm", "-e", "FROM_MACHINE=m")
    start(sb, "vm")
    const host = { FAKE_SMOLVM_EXEC: "host" }
    const r = run(sb, ["machine", "exec", "--name", "vm", "-e", "FROM_CLI=c", "--", "sh", "-c", "echo $FROM_MACHINE$FROM_CLI; exit 7"], { env: host })
    expect(r).toMatchObject({ code: 7, stdout: "mc\n" })
    expect(run(sb, ["machine", "exec", "--name", "vm", "--timeout", "200ms", "--", "sleep", "10"], { env: host }).code).toBe(124)
  })

  it("cp needs a running machine and round-trips a file", () => {
    const sb = sandbox()
    const local = join(sb.dir, "in.txt")
    writeFileSync(local, "payload")
    create(sb, "vm")
    expectError(run(sb, ["machine", "cp", local, "vm:/tmp/in.txt"]), /not running/)
    start(sb, "vm")
    ok(run(sb, ["machine", "cp", local, "vm:/tmp/in.txt"]))
    ok(run(sb, ["machine", "cp", "vm:/tmp/in.txt", join(sb.dir, "out.txt")]))
    expect(readFileSync(join(sb.dir, "out.txt"), "utf8")).toBe("payload")
    expectError(run(sb, ["machine", "cp", "vm:/never/there", join(sb.dir, "x")]), /No such file/)
    expectError(run(sb, ["machine", "cp", local, join(sb.dir, "y")]), /machine:path/)
  })
})

describe("fake smolvm: failure modes", () => {
  it("FAKE_SMOLVM_FAIL_LS=1: ls fails with one Error line, exit 1", () => {
    const sb = sandbox()
    create(sb, "vm")
    expectError(run(sb, ["machine", "ls", "--json"], { env: { FAKE_SMOLVM_FAIL_LS: "1" } }))
  })

  it("FAKE_SMOLVM_GARBAGE_LS=1: ls prints something that is not JSON, exit 0", () => {
    const sb = sandbox()
    const r = run(sb, ["machine", "ls", "--json"], { env: { FAKE_SMOLVM_GARBAGE_LS: "1" } })
    expect(r.code).toBe(0)
    expect(r.stdout).not.toBe("")
    expect(() => JSON.parse(r.stdout)).toThrow()
  })

  it("FAKE_SMOLVM_HANG=ls: ls never returns, other commands still do", async () => {
    const sb = sandbox()
    create(sb, "vm")
    const hung = await expectHangs(sb, ["machine", "list", "--json"], { FAKE_SMOLVM_HANG: "ls" })
    expect(hung).toMatchObject({ signal: "SIGTERM", stdout: "" })
    ok(run(sb, ["machine", "start", "--name", "vm"], { env: { FAKE_SMOLVM_HANG: "ls" } }))
  })

  it("FAKE_SMOLVM_HANG=delete,start hangs those, before touching the state", async () => {
    const sb = sandbox()
    create(sb, "vm")
    const env = { FAKE_SMOLVM_HANG: "delete,start" }
    await Promise.all([
      expectHangs(sb, ["machine", "rm", "--name", "vm", "-f"], env),
      expectHangs(sb, ["machine", "start", "--name", "vm"], env)
    ])
    expect(machine(sb, "vm")).toMatchObject({ state: "created" })
    expect(existsSync(`${sb.state}.lock`)).toBe(false)
  })

  it("FAKE_SMOLVM_FAIL_DELETE: delete of those machines fails and keeps them", () => {
    const sb = sandbox()
    for (const n of ["stuck", "free"]) { create(sb, n); start(sb, n) }
    expectError(run(sb, ["machine", "delete", "--name", "stuck", "-f"], { env: { FAKE_SMOLVM_FAIL_DELETE: "stuck" } }))
    ok(run(sb, ["machine", "delete", "--name", "free", "-f"], { env: { FAKE_SMOLVM_FAIL_DELETE: "stuck" } }))
    expect(ls(sb).map((m) => [m.name, m.state])).toEqual([["stuck", "running"]])
    expectError(run(sb, ["machine", "delete", "--name", "stuck", "-f"], { env: { FAKE_SMOLVM_FAIL_DELETE: "*" } }))
    ok(run(sb, ["machine", "delete", "--name", "stuck", "-f"]))
  })

  it("FAKE_SMOLVM_FAIL_CREATE and FAKE_SMOLVM_FAIL_START", () => {
    const sb = sandbox()
    expectError(run(sb, ["machine", "create", "--name", "a"], { env: { FAKE_SMOLVM_FAIL_CREATE: "*" } }))
    expectError(run(sb, ["machine", "create", "--name", "b"], { env: { FAKE_SMOLVM_FAIL_CREATE: "a,b" } }))
    ok(run(sb, ["machine", "create", "--name", "c"], { env: { FAKE_SMOLVM_FAIL_CREATE: "a,b" } }))
    expect(ls(sb).map((m) => m.name)).toEqual(["c"])
    expectError(run(sb, ["machine", "start", "--name", "c"], { env: { FAKE_SMOLVM_FAIL_START: "c" } }))
    expect(machine(sb, "c")!.state).toBe("created")
    expectError(run(sb, ["machine", "start", "--name", "c"], { env: { FAKE_SMOLVM_FAIL_START: "*" } }))
    start(sb, "c")
  })

  it("FAKE_SMOLVM_LOG: one JSON line with argv per invocation", () => {
    const sb = sandbox()
    const env = { FAKE_SMOLVM_LOG: sb.log }
    run(sb, ["--version"], { env })
    run(sb, ["machine", "create", "--name", "x", "--label", "k=v"], { env })
    run(sb, ["machine", "ls", "--json"], { env })
    run(sb, ["machine", "bogus"], { env })
    const calls = readFileSync(sb.log, "utf8").trim().split("\n").map((l) => JSON.parse(l) as { argv: Array<string> })
    expect(calls.map((c) => c.argv)).toEqual([
      ["--version"],
      ["machine", "create", "--name", "x", "--label", "k=v"],
      ["machine", "ls", "--json"],
      ["machine", "bogus"]
    ])
  })
})

describe("fake smolvm: concurrent invocations", () => {
  it("many creates at once all land", async () => {
    const sb = sandbox()
    const names = Array.from({ length: 12 }, (_, k) => `par-${k}`)
    const results = await Promise.all(names.map((n) => runAsync(sb, ["machine", "create", "--name", n])))
    for (const r of results) expect(r.code).toBe(0)
    expect(ls(sb).map((m) => m.name).sort()).toEqual([...names].sort())
  })

  it("racing creates of one name: exactly one wins, the rest say it already exists", async () => {
    const sb = sandbox()
    const results = await Promise.all(Array.from({ length: 6 }, () => runAsync(sb, ["machine", "create", "--name", "contested"])))
    expect(results.filter((r) => r.code === 0)).toHaveLength(1)
    const losers = results.filter((r) => r.code !== 0)
    expect(losers).toHaveLength(5)
    for (const r of losers) expectError(r, /machine 'contested' already exists/)
    expect(ls(sb)).toHaveLength(1)
  })

  it("starts, stops and lists interleaved keep the state file valid", async () => {
    const sb = sandbox()
    for (const n of ["a", "b", "c"]) create(sb, n)
    const ops = ["a", "b", "c"].flatMap((n) => [
      runAsync(sb, ["machine", "start", "--name", n]),
      runAsync(sb, ["machine", "ls", "--json"]),
      runAsync(sb, ["machine", "stop", "--name", n])
    ])
    for (const r of await Promise.all(ops)) expect(r.code).toBe(0)
    expect(ls(sb)).toHaveLength(3)
    expect(existsSync(`${sb.state}.lock`)).toBe(false)
  })
})
