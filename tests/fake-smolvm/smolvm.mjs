#!/usr/bin/env node
/**
 * FAKE smolvm: a stand-in for the `smolvm` microVM manager
 * (github.com/smol-machines/smolvm, v1.8–1.9), which cannot be installed where
 * bottle's tests run. It follows /work/shared/smolvm-cli.md, the contract
 * bottle relies on: same flags, same `machine ls --json` shape, same exit codes,
 * same stdout/stderr split. Nothing is virtualised: a "machine" is a record in
 * a JSON state file. Run it through the `smolvm` wrapper next to this file.
 *
 * Commands (everything else is an argument error, exit 2, or, for real smolvm
 * commands the fake does not implement, an `Error:` line, exit 1):
 *   smolvm --version | -V                         prints `smolvm X.Y.Z`
 *   smolvm machine ls|list [--json] [-v]          JSON array in a random order
 *   smolvm machine create [-n|--name N] [-I|--image IMG] [--cpus N] [--mem MiB]
 *       [-e|--env K=V]... [--label K=V]... [--net] [--allow-cidr CIDR]...
 *       [-v|--volume HOST:GUEST[:ro]]... [-w|--workdir DIR] [--storage GiB]
 *       [--overlay GiB] [-p|--port HOST:GUEST]... [--gpu] [--cuda] [-- CMD...]
 *   smolvm machine start|stop [-n|--name N]       without a name: `default`
 *   smolvm machine delete|rm [-n|--name N] [-f|--force]   without a name: `default`
 *   smolvm machine exec [--name N] [-e K=V]... [-w DIR] [--timeout D] [-i] [-t]
 *       [--stream] [-d] [--] CMD...               (only the long --name)
 *   smolvm machine cp [--mode OCTAL] [--uid U] [--gid G] SRC DST
 *
 * Behaviour worth knowing (mirrors smolvm's source where the contract is silent):
 *   - Errors: exactly one line `Error: <message>` on stderr, exit 1. The message
 *     has smolvm's own wording, prefix included, e.g.
 *     `Error: config operation failed: create machine: machine 'N' already exists`,
 *     `Error: config operation failed: create machine: invalid machine name: …`,
 *     `Error: vm not found: N`,
 *     `Error: agent operation failed: connect: machine 'N' is not running. …`.
 *   - Argument errors: clap-style `error: …`, usage on stderr, exit 2. This
 *     includes a malformed --allow-cidr / --cpus / --mem (clap value parsers).
 *   - `create` stores state `created`, pid null, labels {} and image null unless
 *     given, created_at in Unix seconds. `--allow-cidr` (a.b.c.d/n, or a bare IP
 *     stored as /32; IPv6 too, bare = /128) implies network true. A volume's
 *     HOST must exist (stored as its real path) and GUEST must be absolute.
 *     Without --name, create (like every machine command) targets `default`,
 *     as the contract says.
 *   - `ls --json` elements carry every key of the contract's example plus
 *     `env` (object), `allow_cidrs` (array), `volumes` ([{host, guest,
 *     read_only}]) and `workdir` (string|null): extra keys are allowed by the
 *     contract. Keys are sorted, as serde_json prints them.
 *   - `start` sets state running and a made-up pid; already running: a note on
 *     stdout, exit 0. `stop` sets stopped and keeps the (now stale) pid; not
 *     running: a note, exit 0. Unknown name (explicit --name): vm not found.
 *   - `delete` stops a running machine first, then, without -f, prompts
 *     `Delete machine 'N'? [y/N] ` on stderr. When stdin is not a terminal it
 *     does not read it: it prints `Cancelled` and exits 0 WITHOUT deleting (the
 *     machine stays, now stopped). On a terminal, `y`/`yes` deletes.
 *   - `exec` needs the machine running, else the `not running` error, exit 1.
 *     It does NOT run CMD on the host unless FAKE_SMOLVM_EXEC=host: commands
 *     meant for a VM's guest could do real damage on a developer's machine.
 *     By default it prints CMD (words joined by spaces) on stdout and exits
 *     FAKE_SMOLVM_EXEC_EXIT (default 0).
 *   - `cp`: one side is NAME:PATH and the machine must be running. Uploads are
 *     kept under `<state file>.files/<name>/…`, so a later download of the same
 *     guest path returns them; downloading anything else fails, exit 1.
 *
 * State: one JSON file, `{ "machines": { "<name>": <ls element> } }`; tests may
 * seed it directly (missing keys get defaults), e.g. to fake an `unreachable`
 * or `ephemeral` machine. Writes go to a temp file renamed into place, under a
 * lock file (`<state>.lock`, O_EXCL, retried; a dead holder's lock is broken).
 *
 * Environment:
 *   FAKE_SMOLVM_STATE        state file (default: $TMPDIR/fake-smolvm-state.json)
 *   FAKE_SMOLVM_VERSION      what --version reports (default 1.9.0; any string)
 *   FAKE_SMOLVM_LOG          file to append one JSON line per invocation:
 *                            {"argv": [...], "pid": n, "time": "ISO-8601"}
 *   FAKE_SMOLVM_FAIL_LS=1    `ls` fails: one `Error:` line, exit 1
 *   FAKE_SMOLVM_GARBAGE_LS=1 `ls` prints non-JSON garbage on stdout, exit 0
 *   FAKE_SMOLVM_HANG=CMDS    sleep forever before running one of CMDS
 *                            (comma-separated: ls, create, start, stop, delete,
 *                            exec, cp, version; aliases list/rm work; * = all)
 *   FAKE_SMOLVM_FAIL_CREATE=NAMES, FAKE_SMOLVM_FAIL_START=NAMES,
 *   FAKE_SMOLVM_FAIL_DELETE=NAMES
 *                            that command fails (`Error:` line, exit 1, state
 *                            unchanged) for those machine names (comma-separated,
 *                            or * for every machine)
 *   FAKE_SMOLVM_EXEC=host    `exec` really runs CMD on the host (machine env and
 *                            -e merged into the environment, --workdir ignored),
 *                            exiting with CMD's code; 124 when --timeout expires
 *   FAKE_SMOLVM_EXEC_EXIT=N  exit code of `exec` when not run on the host
 */
import { spawn } from "node:child_process"
import fs from "node:fs"
import net from "node:net"
import os from "node:os"
import path from "node:path"
import tty from "node:tty"

// ---------------------------------------------------------------------------
// Output and exits
// ---------------------------------------------------------------------------

class Exit extends Error {
  constructor(code) {
    super(`exit ${code}`)
    this.code = code
  }
}

const sleepCell = new Int32Array(new SharedArrayBuffer(4))
const sleepMs = (ms) => Atomics.wait(sleepCell, 0, 0, Math.max(1, Math.round(ms)))

/** Synchronous, complete writes: nothing is lost when the process exits right after. */
function writeAll(fd, text) {
  const buf = Buffer.from(text)
  let off = 0
  while (off < buf.length) {
    try {
      off += fs.writeSync(fd, buf, off)
    } catch (e) {
      if (e.code === "EAGAIN") { sleepMs(2); continue }
      if (e.code === "EPIPE") return
      throw e
    }
  }
}
const out = (line) => writeAll(1, line + "\n")
const errLine = (line) => writeAll(2, line + "\n")

/** A smolvm error: one `Error:` line on stderr, exit 1. */
function fail(message) {
  errLine(`Error: ${message}`)
  throw new Exit(1)
}

/** A clap argument error: usage on stderr, exit 2. */
function usageError(message, usage) {
  writeAll(2, `error: ${message}\n\nUsage: ${usage}\n\nFor more information, try '--help'.\n`)
  throw new Exit(2)
}

// ---------------------------------------------------------------------------
// Environment switches
// ---------------------------------------------------------------------------

const env = process.env
const VERSION = env.FAKE_SMOLVM_VERSION ?? "1.9.0"
const statePath = () => env.FAKE_SMOLVM_STATE || path.join(os.tmpdir(), "fake-smolvm-state.json")
const CANONICAL = { list: "ls", rm: "delete" }
const listOf = (value) => (value ?? "").split(",").map((s) => s.trim()).filter((s) => s !== "")
const hangs = (command) => listOf(env.FAKE_SMOLVM_HANG).some((c) => c === "*" || (CANONICAL[c] ?? c) === command)
const injected = (variable, name) => listOf(env[variable]).some((n) => n === "*" || n === name)

function logInvocation(argv) {
  const file = env.FAKE_SMOLVM_LOG
  if (!file) return
  fs.appendFileSync(file, JSON.stringify({ argv, pid: process.pid, time: new Date().toISOString() }) + "\n")
}

function hangForever() {
  // Keeps the event loop alive until the process is killed.
  setInterval(() => {}, 1 << 30)
  return new Promise(() => {})
}

// ---------------------------------------------------------------------------
// State file: atomic writes under a lock
// ---------------------------------------------------------------------------

const emptyState = () => ({ machines: {} })

function readState() {
  const file = statePath()
  let raw
  try {
    raw = fs.readFileSync(file, "utf8")
  } catch (e) {
    if (e.code === "ENOENT") return emptyState()
    fail(`database operation failed: open: ${file}: ${e.message}`)
  }
  if (raw.trim() === "") return emptyState()
  let parsed
  try {
    parsed = JSON.parse(raw)
  } catch (e) {
    fail(`database operation failed: read: ${file} is not valid JSON: ${e.message}`)
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) fail(`database operation failed: read: ${file} is not a state object`)
  if (parsed.machines === undefined) parsed.machines = {}
  if (parsed.machines === null || typeof parsed.machines !== "object" || Array.isArray(parsed.machines)) fail(`database operation failed: read: ${file}: "machines" is not an object`)
  return parsed
}

function writeState(state) {
  const file = statePath()
  fs.mkdirSync(path.dirname(file), { recursive: true })
  const tmp = `${file}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`
  fs.writeFileSync(tmp, JSON.stringify(state, null, 2) + "\n")
  fs.renameSync(tmp, file)
}

function pidAlive(pid) {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return e.code === "EPERM"
  }
}

function lockIsStale(lock) {
  let content, stat
  try {
    content = fs.readFileSync(lock, "utf8").trim()
    stat = fs.statSync(lock)
  } catch {
    return false // gone already, or unreadable for a moment: just retry
  }
  const pid = Number(content)
  if (Number.isInteger(pid) && pid > 0) return !pidAlive(pid)
  // Empty: its holder is between creating and writing it, or died right there.
  return Date.now() - stat.mtimeMs > 5000
}

function acquireLock() {
  const lock = `${statePath()}.lock`
  const deadline = Date.now() + 30_000
  for (;;) {
    try {
      const fd = fs.openSync(lock, "wx")
      fs.writeSync(fd, String(process.pid))
      fs.closeSync(fd)
      return lock
    } catch (e) {
      if (e.code === "ENOENT") { fs.mkdirSync(path.dirname(lock), { recursive: true }); continue }
      if (e.code !== "EEXIST") throw e
    }
    if (lockIsStale(lock)) {
      try { fs.unlinkSync(lock) } catch { /* someone else broke it */ }
      continue
    }
    if (Date.now() > deadline) fail(`database operation failed: lock: timed out waiting for ${lock}`)
    sleepMs(3 + Math.random() * 20)
  }
}

function releaseLock(lock) {
  try {
    if (fs.readFileSync(lock, "utf8").trim() === String(process.pid)) fs.unlinkSync(lock)
  } catch { /* already gone */ }
}

/** Runs `change` on the current state under the lock; writes the state back if it returns true. */
function transact(change) {
  const lock = acquireLock()
  try {
    const state = readState()
    if (change(state) === true) writeState(state)
  } finally {
    releaseLock(lock)
  }
}

// ---------------------------------------------------------------------------
// Machine records
// ---------------------------------------------------------------------------

const DEFAULT_CPUS = 4
const DEFAULT_MEM = 8192

/** Every key of the contract's `ls --json` element, plus the fake's extra ones. */
const defaults = (name) => ({
  cmd: [],
  cpus: DEFAULT_CPUS,
  created_at: 0,
  cuda: false,
  cuda_fork_pool_size: null,
  cuda_vram_limit_mib: null,
  entrypoint: [],
  ephemeral: false,
  forkable: false,
  forkpoint_held: false,
  gpu: false,
  gpu_vram_mib: null,
  health_cmd: null,
  health_interval_secs: null,
  health_retries: null,
  health_startup_grace_secs: null,
  health_timeout_secs: null,
  image: null,
  labels: {},
  memory_mib: DEFAULT_MEM,
  mounts: 0,
  name,
  network: false,
  overlay_gb: null,
  pid: null,
  ports: 0,
  restart_count: 0,
  restart_max_retries: 0,
  restart_policy: "never",
  state: "created",
  storage_gb: null,
  // Not in smolvm's output; the contract allows new keys.
  allow_cidrs: [],
  env: {},
  volumes: [],
  workdir: null
})

const sortKeys = (value) => {
  if (Array.isArray(value)) return value.map(sortKeys)
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.keys(value).sort().map((k) => [k, sortKeys(value[k])]))
  }
  return value
}

const element = (name, record) => sortKeys({ ...defaults(name), ...record, name })

const fakePid = () => 20000 + Math.floor(Math.random() * 40000)

const RUNNING_LIKE = new Set(["running", "unreachable", "frozen"])

// ---------------------------------------------------------------------------
// Validation, as smolvm does it
// ---------------------------------------------------------------------------

/** The contract's validate_vm_name; returns the reason it is invalid, or null. */
function nameProblem(name) {
  if (name.length === 0) return "name cannot be empty"
  if (Buffer.byteLength(name) > 128) return `name is ${Buffer.byteLength(name)} bytes long (max 128)`
  if (!/^[A-Za-z0-9]/.test(name)) return "name must start with an ASCII letter or digit"
  const bad = [...name].find((c) => !/^[A-Za-z0-9_-]$/.test(c))
  if (bad !== undefined) return `name contains '${bad}' (only A-Z, a-z, 0-9, '_' and '-' are allowed)`
  if (name.includes("--")) return "name must not contain '--'"
  if (name.endsWith("-")) return "name must not end with '-'"
  return null
}

const IPV4_OCTET = /^(0|[1-9][0-9]{0,2})$/

/** smolvm's parse_cidr: `a.b.c.d/n` or a bare IP (read as a host route). Returns the normalised CIDR, or an error string. */
function parseCidr(text) {
  const slash = text.indexOf("/")
  const addr = slash === -1 ? text : text.slice(0, slash)
  const prefixText = slash === -1 ? null : text.slice(slash + 1)
  let family
  if (net.isIPv4(addr) && addr.split(".").every((o) => IPV4_OCTET.test(o) && Number(o) <= 255)) family = 4
  else if (net.isIPv6(addr)) family = 6
  else return { error: `invalid IP address '${addr}'` }
  const max = family === 4 ? 32 : 128
  if (prefixText === null) return { cidr: `${addr}/${max}` }
  if (!/^(0|[1-9][0-9]{0,2})$/.test(prefixText) || Number(prefixText) > max) return { error: `invalid prefix length '${prefixText}' (expected 0..=${max})` }
  return { cidr: `${addr}/${Number(prefixText)}` }
}

function parseKeyValue(spec, what) {
  const eq = spec.indexOf("=")
  if (eq <= 0) fail(`config operation failed: ${what}: expected KEY=VALUE, got '${spec}'`)
  return [spec.slice(0, eq), spec.slice(eq + 1)]
}

function parseVolume(spec) {
  let readOnly = false
  let body = spec
  if (body.endsWith(":ro")) { readOnly = true; body = body.slice(0, -3) }
  else if (body.endsWith(":rw")) body = body.slice(0, -3)
  const colon = body.indexOf(":")
  if (colon <= 0 || colon === body.length - 1) fail(`invalid mount path: expected HOST:GUEST[:ro], got '${spec}'`)
  const host = body.slice(0, colon)
  const guest = body.slice(colon + 1)
  if (!guest.startsWith("/")) fail(`invalid mount path: guest path must be absolute, got '${guest}'`)
  let real
  try {
    real = fs.realpathSync(path.resolve(host))
  } catch {
    fail(`mount source not found: ${host}`)
  }
  return { host: real, guest, read_only: readOnly }
}

function parsePort(spec, usage) {
  const m = /^([0-9]{1,5}):([0-9]{1,5})$/.exec(spec)
  if (!m || Number(m[1]) < 1 || Number(m[1]) > 65535 || Number(m[2]) < 1 || Number(m[2]) > 65535) {
    usageError(`invalid value '${spec}' for '--port <HOST:GUEST>': expected HOST:GUEST with ports in 1..=65535`, usage)
  }
  return spec
}

function parseUnsigned(text, flag, max, usage) {
  if (!/^[0-9]+$/.test(text)) usageError(`invalid value '${text}' for '${flag}': invalid digit found in string`, usage)
  const n = Number(text)
  if (n > max) usageError(`invalid value '${text}' for '${flag}': ${text} is not in 0..=${max}`, usage)
  return n
}

function parseDurationMs(text, usage) {
  const m = /^([0-9]+)(ms|s|m|h)?$/.exec(text)
  if (!m) usageError(`invalid value '${text}' for '--timeout <DURATION>': expected a duration like 30s, 5m or 1h`, usage)
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] ?? "s"]
  return Number(m[1]) * unit
}

// ---------------------------------------------------------------------------
// Argument parsing, clap style
// ---------------------------------------------------------------------------

const opt = (long, short, value, extra = {}) => ({ long, short, value, ...extra })
const flag = (long, short, extra = {}) => ({ long, short, value: null, ...extra })

const NAME = opt("name", "n", "NAME")
const SPECS = {
  ls: {
    about: "List all machines",
    usage: "smolvm machine ls [OPTIONS]",
    options: [flag("verbose", "v"), flag("json", null)]
  },
  create: {
    about: "Create a new named machine configuration",
    usage: "smolvm machine create [OPTIONS] [-- <COMMAND>...]",
    options: [
      NAME,
      opt("label", null, "KEY=VALUE", { multi: true }),
      opt("image", "I", "IMAGE"),
      opt("cpus", null, "N"),
      opt("mem", null, "MiB"),
      opt("storage", null, "GiB"),
      opt("overlay", null, "GiB"),
      opt("volume", "v", "HOST:GUEST[:ro]", { multi: true }),
      opt("port", "p", "HOST:GUEST", { multi: true }),
      flag("net", null),
      opt("allow-cidr", null, "CIDR", { multi: true }),
      flag("gpu", null),
      flag("cuda", null),
      opt("env", "e", "KEY=VALUE", { multi: true }),
      opt("workdir", "w", "DIR")
    ],
    trailing: "last"
  },
  start: { about: "Start a machine", usage: "smolvm machine start [OPTIONS]", options: [NAME] },
  stop: { about: "Stop a running machine", usage: "smolvm machine stop [OPTIONS]", options: [NAME] },
  delete: {
    about: "Delete a machine configuration",
    usage: "smolvm machine delete [OPTIONS]",
    options: [NAME, flag("force", "f")]
  },
  exec: {
    about: "Run a command directly in the VM (not in a container)",
    usage: "smolvm machine exec [OPTIONS] <COMMAND>...",
    options: [
      opt("name", null, "NAME"),
      opt("workdir", "w", "DIR"),
      opt("env", "e", "KEY=VALUE", { multi: true }),
      opt("timeout", null, "DURATION"),
      flag("interactive", "i"),
      flag("tty", "t"),
      flag("stream", null),
      flag("detach", "d")
    ],
    trailing: "var",
    trailingRequired: "<COMMAND>..."
  },
  cp: {
    about: "Copy files between host and machine",
    usage: "smolvm machine cp [OPTIONS] <SRC> <DST>",
    options: [opt("mode", null, "OCTAL"), opt("uid", null, "UID"), opt("gid", null, "GID")],
    positionals: ["<SRC>", "<DST>"]
  }
}

const MACHINE_USAGE = "smolvm machine <COMMAND>"
const TOP_USAGE = "smolvm [OPTIONS] <COMMAND>"
const REAL_MACHINE_COMMANDS = ["run", "fork", "fork-release", "status", "egress-events", "resize", "update", "images", "prune", "shell", "sh", "monitor", "network-test", "data-dir"]
const REAL_TOP_COMMANDS = ["container", "pack", "serve", "config", "sandbox", "microvm", "secret", "smolfile", "openapi"]

const optLabel = (o) => (o.value === null ? `--${o.long}` : `--${o.long} <${o.value}>`)

function helpText(spec) {
  const lines = [`${spec.about} (fake smolvm)`, "", `Usage: ${spec.usage}`, "", "Options:"]
  for (const o of spec.options) lines.push(`  ${o.short ? `-${o.short}, ` : "    "}${optLabel(o)}`)
  lines.push("  -h, --help")
  return lines.join("\n")
}

function parseArgs(spec, args) {
  const values = {}
  const trailing = []
  const positionals = []
  const byLong = new Map(spec.options.map((o) => [o.long, o]))
  const byShort = new Map(spec.options.filter((o) => o.short).map((o) => [o.short, o]))
  const set = (o, v) => {
    if (o.multi) (values[o.long] ??= []).push(v)
    else if (o.long in values) usageError(`the argument '${optLabel(o)}' cannot be used multiple times`, spec.usage)
    else values[o.long] = v
  }
  const takeValue = (o, i) => {
    const next = args[i + 1]
    if (next === undefined || (next.startsWith("-") && next !== "-")) usageError(`a value is required for '${optLabel(o)}' but none was supplied`, spec.usage)
    return next
  }
  const positional = (a) => {
    if (spec.trailing === "var") return "trailing"
    if (spec.positionals && positionals.length < spec.positionals.length) { positionals.push(a); return "ok" }
    usageError(`unexpected argument '${a}' found`, spec.usage)
  }

  let i = 0
  while (i < args.length) {
    const a = args[i]
    if (a === "--") {
      // Everything after `--` is a value: the command for create/exec, positionals for cp.
      const rest = args.slice(i + 1)
      if (spec.trailing) trailing.push(...rest)
      else for (const r of rest) positional(r)
      break
    }
    if (a === "-h" || a === "--help") {
      out(helpText(spec))
      throw new Exit(0)
    }
    if (a.startsWith("--")) {
      const eq = a.indexOf("=")
      const name = eq === -1 ? a.slice(2) : a.slice(2, eq)
      const o = byLong.get(name)
      if (!o) usageError(`unexpected argument '${eq === -1 ? a : a.slice(0, eq)}' found`, spec.usage)
      if (o.value === null) {
        if (eq !== -1) usageError(`unexpected value '${a.slice(eq + 1)}' for '${optLabel(o)}' found; no more were expected`, spec.usage)
        set(o, true)
        i += 1
      } else if (eq !== -1) {
        set(o, a.slice(eq + 1))
        i += 1
      } else {
        set(o, takeValue(o, i))
        i += 2
      }
      continue
    }
    if (a.startsWith("-") && a !== "-") {
      let consumedNext = false
      for (let k = 1; k < a.length; k++) {
        const c = a[k]
        const o = byShort.get(c)
        if (!o) usageError(`unexpected argument '-${c}' found`, spec.usage)
        if (o.value === null) { set(o, true); continue }
        const rest = a.slice(k + 1).replace(/^=/, "")
        if (rest !== "") set(o, rest)
        else { set(o, takeValue(o, i)); consumedNext = true }
        break
      }
      i += consumedNext ? 2 : 1
      continue
    }
    if (positional(a) === "trailing") {
      // clap's trailing_var_arg: the first positional starts the command; the rest is its.
      trailing.push(...args.slice(i))
      break
    }
    i += 1
  }

  const missing = []
  for (const r of spec.required ?? []) if (!(r in values)) missing.push(optLabel(byLong.get(r)))
  if (spec.positionals) for (let k = positionals.length; k < spec.positionals.length; k++) missing.push(spec.positionals[k])
  if (spec.trailingRequired && trailing.length === 0) missing.push(spec.trailingRequired)
  if (missing.length > 0) usageError(`the following required arguments were not provided:\n  ${missing.join("\n  ")}`, spec.usage)
  return { values, trailing, positionals }
}

// ---------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------

function cmdLs(args) {
  const { values } = parseArgs(SPECS.ls, args)
  if (env.FAKE_SMOLVM_FAIL_LS === "1") fail("database operation failed: open: database is locked (injected by FAKE_SMOLVM_FAIL_LS)")
  if (env.FAKE_SMOLVM_GARBAGE_LS === "1") {
    out("warning: smolvm database schema is newer than this binary")
    out("[{\"name\": \"half-written\", \"state\": running,")
    return 0
  }
  const state = readState()
  const machines = Object.entries(state.machines).map(([name, record]) => element(name, record))
  // The order is not defined by smolvm: shuffle it so nobody can depend on it.
  for (let k = machines.length - 1; k > 0; k--) {
    const j = Math.floor(Math.random() * (k + 1))
    ;[machines[k], machines[j]] = [machines[j], machines[k]]
  }
  if (values.json) {
    out(machines.length === 0 ? "[]" : JSON.stringify(machines, null, 2))
    return 0
  }
  if (machines.length === 0) {
    out("No machines found")
    return 0
  }
  const row = (cols) => `${cols[0].padEnd(20)} ${cols[1].padEnd(12)} ${cols[2].padStart(5)} ${cols[3].padStart(10)} ${cols[4].padStart(7)} ${cols[5].padStart(7)}`
  out(row(["NAME", "STATE", "CPUS", "MEMORY", "MOUNTS", "PORTS"]))
  out("-".repeat(66))
  for (const m of machines) {
    const name = m.name.length > 18 ? `${m.name.slice(0, 15)}...` : m.name
    out(row([name, m.ephemeral ? `${m.state} (eph)` : String(m.state), String(m.cpus), `${m.memory_mib} MiB`, String(m.mounts), String(m.ports)]))
    if (values.verbose) {
      if (m.pid !== null) out(`  PID: ${m.pid}`)
      for (const v of m.volumes ?? []) out(`  Mount: ${v.host} -> ${v.guest}${v.read_only ? " (ro)" : ""}`)
      if (m.network) out("  Network: enabled")
      for (const [k, v] of Object.entries(m.env ?? {})) out(`  Env: ${k}=${v}`)
      if (m.workdir) out(`  Workdir: ${m.workdir}`)
      out(`  Created: ${m.created_at}`)
      out("")
    }
  }
  return 0
}

function cmdCreate(args) {
  const spec = SPECS.create
  const { values, trailing } = parseArgs(spec, args)
  // Values clap itself would reject (exit 2) come first.
  const cpus = values.cpus === undefined ? DEFAULT_CPUS : parseUnsigned(values.cpus, "--cpus <N>", 255, spec.usage)
  const mem = values.mem === undefined ? DEFAULT_MEM : parseUnsigned(values.mem, "--mem <MiB>", 4294967295, spec.usage)
  const storage = values.storage === undefined ? null : parseUnsigned(values.storage, "--storage <GiB>", Number.MAX_SAFE_INTEGER, spec.usage)
  const overlay = values.overlay === undefined ? null : parseUnsigned(values.overlay, "--overlay <GiB>", Number.MAX_SAFE_INTEGER, spec.usage)
  const allowCidrs = (values["allow-cidr"] ?? []).map((c) => {
    const r = parseCidr(c)
    if (r.error) usageError(`invalid value '${c}' for '--allow-cidr <CIDR>': ${r.error}`, spec.usage)
    return r.cidr
  })
  const ports = (values.port ?? []).map((p) => parsePort(p, spec.usage))
  if (values.image === "") usageError("invalid value '' for '--image <IMAGE>': image reference is empty", spec.usage)

  const name = values.name ?? "default"
  const problem = nameProblem(name)
  if (problem) fail(`config operation failed: create machine: invalid machine name: ${problem}`)
  if (injected("FAKE_SMOLVM_FAIL_CREATE", name)) fail(`vm creation failed: ${name}: injected by FAKE_SMOLVM_FAIL_CREATE`)

  const labels = {}
  for (const l of values.label ?? []) {
    const [k, v] = parseKeyValue(l, "label")
    labels[k] = v
  }
  const envs = {}
  for (const e of values.env ?? []) {
    const [k, v] = parseKeyValue(e, "env")
    envs[k] = v
  }
  if (cpus === 0) fail("config operation failed: resources: cpus must be at least 1")
  if (mem === 0) fail("config operation failed: resources: memory must be at least 1 MiB")

  let created = false
  transact((state) => {
    if (Object.hasOwn(state.machines, name)) fail(`config operation failed: create machine: machine '${name}' already exists`)
    const volumes = (values.volume ?? []).map(parseVolume)
    state.machines[name] = element(name, {
      cmd: trailing,
      cpus,
      created_at: Math.floor(Date.now() / 1000),
      cuda: values.cuda === true,
      gpu: values.gpu === true,
      image: values.image ?? null,
      labels,
      memory_mib: mem,
      mounts: volumes.length,
      network: values.net === true || allowCidrs.length > 0,
      overlay_gb: overlay,
      ports: ports.length,
      storage_gb: storage,
      allow_cidrs: allowCidrs,
      env: envs,
      volumes,
      workdir: values.workdir ?? null
    })
    created = true
    return true
  })
  if (created) {
    out(`Created machine: ${name}`)
    out(`  CPUs: ${cpus}, Memory: ${mem} MiB`)
    if ((values.volume ?? []).length > 0) out(`  Mounts: ${values.volume.length}`)
    if (ports.length > 0) out(`  Ports: ${ports.length}`)
    out("")
    out(`Use 'smolvm machine start --name ${name}' to start the machine`)
    out(`Then use 'smolvm machine exec --name ${name} -- <command>' to run commands`)
  }
  return 0
}

function cmdStart(args) {
  const { values } = parseArgs(SPECS.start, args)
  const explicit = values.name !== undefined
  const name = values.name ?? "default"
  const lines = []
  transact((state) => {
    let record = Object.hasOwn(state.machines, name) ? state.machines[name] : undefined
    if (record === undefined) {
      if (explicit) fail(`vm not found: ${name}`)
      // Without --name smolvm boots (and records) the default machine.
      record = element(name, { created_at: Math.floor(Date.now() / 1000) })
      state.machines[name] = record
    }
    if (record.state === "running" || record.state === "frozen") {
      lines.push(`Machine '${name}' already running${record.pid == null ? "" : ` (PID: ${record.pid})`}`)
      return false
    }
    if (injected("FAKE_SMOLVM_FAIL_START", name)) fail(`agent operation failed: start machine: ${name}: injected by FAKE_SMOLVM_FAIL_START`)
    if (record.state === "unreachable") lines.push(`Machine '${name}' is unreachable (PID ${record.pid ?? 0} alive but agent unresponsive); cleaning up.`)
    const pid = fakePid()
    lines.push(`Starting machine '${name}'...`)
    if (record.image) lines.push(`Pulling ${record.image}...`)
    lines.push(`Machine '${name}' running (PID: ${pid})`)
    record.state = "running"
    record.pid = pid
    return true
  })
  for (const l of lines) out(l)
  return 0
}

function cmdStop(args) {
  const { values } = parseArgs(SPECS.stop, args)
  const explicit = values.name !== undefined
  const name = values.name ?? "default"
  const lines = []
  transact((state) => {
    const record = Object.hasOwn(state.machines, name) ? state.machines[name] : undefined
    if (record === undefined) {
      if (explicit) fail(`vm not found: ${name}`)
      lines.push("Stopping machine 'default'...", "Machine 'default' stopped")
      return false
    }
    if (!RUNNING_LIKE.has(record.state)) {
      lines.push(`Machine '${name}' is not running (state: ${record.state})`)
      return false
    }
    lines.push(`Stopping machine '${name}'...`, `Stopped machine: ${name}`)
    record.state = "stopped" // the pid stays, stale, as smolvm's may
    return true
  })
  for (const l of lines) out(l)
  return 0
}

function filesDir(name) {
  return path.join(`${statePath()}.files`, encodeURIComponent(name))
}

function readAnswer() {
  const buf = Buffer.alloc(1)
  let line = ""
  for (;;) {
    let n
    try {
      n = fs.readSync(0, buf, 0, 1, null)
    } catch (e) {
      if (e.code === "EAGAIN") { sleepMs(10); continue }
      return null
    }
    if (n === 0) return line === "" ? null : line
    const ch = buf.toString("utf8")
    if (ch === "\n") return line
    line += ch
  }
}

function cmdDelete(args) {
  const { values } = parseArgs(SPECS.delete, args)
  const name = values.name ?? "default"
  const lines = []
  const flush = () => { for (const l of lines.splice(0)) out(l) }
  // smolvm stops a running machine before it asks for confirmation.
  transact((state) => {
    const record = Object.hasOwn(state.machines, name) ? state.machines[name] : undefined
    if (record === undefined) fail(`vm not found: ${name}`)
    if (injected("FAKE_SMOLVM_FAIL_DELETE", name)) fail(`agent operation failed: delete machine: ${name}: injected by FAKE_SMOLVM_FAIL_DELETE`)
    let changed = false
    if (RUNNING_LIKE.has(record.state)) {
      lines.push(`Stopping machine '${name}'...`)
      record.state = "stopped"
      changed = true
    }
    if (values.force === true) {
      delete state.machines[name]
      changed = true
    }
    return changed
  })
  flush()
  if (values.force !== true) {
    writeAll(2, `Delete machine '${name}'? [y/N] `)
    // Not a terminal: smolvm gets no answer and cancels. The fake does not even read stdin.
    const answer = tty.isatty(0) ? readAnswer() : null
    const yes = answer !== null && ["y", "yes"].includes(answer.trim().toLowerCase())
    if (!yes) {
      out("Cancelled")
      return 0
    }
    transact((state) => {
      if (!Object.hasOwn(state.machines, name)) fail(`vm not found: ${name}`)
      delete state.machines[name]
      return true
    })
  }
  fs.rmSync(filesDir(name), { recursive: true, force: true })
  out(`Deleted machine: ${name}`)
  return 0
}

function notRunning(name, explicit) {
  const hint = explicit ? `smolvm machine start --name ${name}` : "smolvm machine start"
  fail(`agent operation failed: connect: machine '${name}' is not running. Use '${hint}' first.`)
}

function runningRecord(name, explicit) {
  const state = readState()
  const record = Object.hasOwn(state.machines, name) ? state.machines[name] : undefined
  if (record === undefined || record.state !== "running") notRunning(name, explicit)
  return record
}

function cmdExec(args) {
  const spec = SPECS.exec
  const { values, trailing } = parseArgs(spec, args)
  const timeoutMs = values.timeout === undefined ? null : parseDurationMs(values.timeout, spec.usage)
  if (values.detach && (values.interactive || values.tty || values.stream)) {
    usageError("the argument '--detach' cannot be used with '--interactive', '--tty' or '--stream'", spec.usage)
  }
  const explicit = values.name !== undefined
  const name = values.name ?? "default"
  const record = runningRecord(name, explicit)
  const cliEnv = {}
  for (const e of values.env ?? []) {
    const [k, v] = parseKeyValue(e, "env")
    cliEnv[k] = v
  }

  if (env.FAKE_SMOLVM_EXEC !== "host") {
    if (values.detach) {
      out(String(fakePid()))
      return 0
    }
    out(trailing.join(" "))
    const code = Number(env.FAKE_SMOLVM_EXEC_EXIT ?? "0")
    return Number.isInteger(code) && code >= 0 && code <= 255 ? code : 0
  }

  return new Promise((resolve) => {
    const child = spawn(trailing[0], trailing.slice(1), {
      stdio: values.detach ? "ignore" : "inherit",
      env: { ...process.env, ...(record.env ?? {}), ...cliEnv },
      detached: values.detach === true
    })
    let timedOut = false
    const timer = timeoutMs === null ? null : setTimeout(() => { timedOut = true; child.kill("SIGKILL") }, timeoutMs)
    child.on("error", (e) => {
      if (timer) clearTimeout(timer)
      try {
        fail(`agent operation failed: vm exec: ${e.code === "ENOENT" ? "No such file or directory (os error 2)" : e.message}`)
      } catch (x) {
        resolve(x instanceof Exit ? x.code : 1)
      }
    })
    if (values.detach) {
      child.on("spawn", () => { child.unref(); out(String(child.pid)); resolve(0) })
      return
    }
    child.on("exit", (code, signal) => {
      if (timer) clearTimeout(timer)
      if (timedOut) resolve(124)
      else if (code !== null) resolve(code)
      else resolve(128 + (os.constants.signals[signal] ?? 0))
    })
  })
}

function cmdCp(args) {
  const { values, positionals } = parseArgs(SPECS.cp, args)
  const [src, dst] = positionals
  let machine, guestPath, localPath, upload
  if (src.includes(":")) {
    ;[machine, guestPath] = [src.slice(0, src.indexOf(":")), src.slice(src.indexOf(":") + 1)]
    localPath = dst
    upload = false
  } else if (dst.includes(":")) {
    ;[machine, guestPath] = [dst.slice(0, dst.indexOf(":")), dst.slice(dst.indexOf(":") + 1)]
    localPath = src
    upload = true
  } else {
    fail("config operation failed: cp: one of SRC or DST must use machine:path syntax (e.g., myvm:/workspace/file)")
  }
  if (!upload && (values.mode !== undefined || values.uid !== undefined || values.gid !== undefined)) {
    fail("config operation failed: cp: --mode/--uid/--gid apply to uploads only (host -> machine)")
  }
  if (values.mode !== undefined) {
    const digits = values.mode.replace(/^0o/, "")
    if (!/^[0-7]+$/.test(digits) || parseInt(digits, 8) > 0o7777) fail(`config operation failed: cp: invalid octal mode '${values.mode}' (expected e.g. 644)`)
  }
  for (const k of ["uid", "gid"]) {
    if (values[k] !== undefined && !/^[0-9]+$/.test(values[k])) usageError(`invalid value '${values[k]}' for '--${k} <${k.toUpperCase()}>': invalid digit found in string`, SPECS.cp.usage)
  }
  runningRecord(machine, true)
  // The guest file system: uploads land under <state>.files/<machine>/.
  const stored = path.join(filesDir(machine), path.posix.normalize("/" + guestPath))
  if (upload) {
    let data
    try {
      data = fs.readFileSync(localPath)
    } catch (e) {
      fail(`agent operation failed: read local file: ${localPath}: ${e.code === "EISDIR" ? "Is a directory (os error 21)" : "No such file or directory (os error 2)"}`)
    }
    fs.mkdirSync(path.dirname(stored), { recursive: true })
    fs.writeFileSync(stored, data)
    errLine(`Uploading ${localPath} -> ${guestPath}: ${data.length} bytes`)
  } else {
    let data
    try {
      data = fs.readFileSync(stored)
    } catch {
      fail(`agent operation failed: read file: ${guestPath}: No such file or directory (os error 2)`)
    }
    try {
      fs.writeFileSync(localPath, data)
    } catch (e) {
      fail(`agent operation failed: write local file: ${localPath}: ${e.message}`)
    }
    errLine(`Downloading ${guestPath} -> ${localPath}: ${data.length} bytes`)
  }
  return 0
}

const MACHINE_COMMANDS = { ls: cmdLs, create: cmdCreate, start: cmdStart, stop: cmdStop, delete: cmdDelete, exec: cmdExec, cp: cmdCp }

function topHelp() {
  return [
    "smolvm: run OCI images as microVMs (fake, for bottle's tests)",
    "",
    `Usage: ${TOP_USAGE}`,
    "",
    "Commands:",
    "  machine  Manage machines",
    "",
    "Options:",
    "  -h, --help     Print help",
    "  -V, --version  Print version"
  ].join("\n")
}

function machineHelp() {
  const lines = ["Manage machines", "", `Usage: ${MACHINE_USAGE}`, "", "Commands:"]
  for (const [k, s] of Object.entries(SPECS)) lines.push(`  ${k.padEnd(7)}${s.about}`)
  return lines.join("\n")
}

/** Returns the exit code, or a promise of it. */
function main(argv) {
  let i = 0
  while (i < argv.length && argv[i].startsWith("-")) {
    const a = argv[i]
    if (a === "--version" || a === "-V") {
      if (hangs("version")) return hangForever()
      out(`smolvm ${VERSION}`)
      return 0
    }
    if (a === "--help" || a === "-h") {
      out(topHelp())
      return 0
    }
    usageError(`unexpected argument '${a}' found`, TOP_USAGE)
  }
  const top = argv[i]
  if (top === undefined) {
    writeAll(2, topHelp() + "\n")
    return 2
  }
  if (top !== "machine") {
    if (REAL_TOP_COMMANDS.includes(top)) fail(`the fake smolvm does not implement '${top}'`)
    usageError(`unrecognized subcommand '${top}'`, TOP_USAGE)
  }
  const sub = argv[i + 1]
  if (sub === undefined) {
    writeAll(2, machineHelp() + "\n")
    return 2
  }
  if (sub === "--help" || sub === "-h") {
    out(machineHelp())
    return 0
  }
  if (sub.startsWith("-")) usageError(`unexpected argument '${sub}' found`, MACHINE_USAGE)
  const command = CANONICAL[sub] ?? sub
  const run = MACHINE_COMMANDS[command]
  if (!run) {
    if (REAL_MACHINE_COMMANDS.includes(sub)) fail(`the fake smolvm does not implement 'machine ${sub}'`)
    usageError(`unrecognized subcommand '${sub}'`, MACHINE_USAGE)
  }
  if (hangs(command)) return hangForever()
  return run(argv.slice(i + 2))
}

const settle = (code) => { process.exitCode = code }
const crash = (e) => {
  if (e instanceof Exit) return settle(e.code)
  writeAll(2, `Error: fake smolvm internal error: ${e && e.stack ? e.stack.split("\n")[0] : String(e)}\n`)
  settle(1)
}

try {
  const argv = process.argv.slice(2)
  logInvocation(argv)
  const result = main(argv)
  if (result instanceof Promise) result.then(settle, crash)
  else settle(result)
} catch (e) {
  crash(e)
}
