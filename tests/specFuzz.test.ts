/**
 * Property: whatever a spec file holds, `bottle apply` ends with 0, 1 or 2
 * and a message, never a JavaScript stack trace; a spec it refuses (2) names
 * the file and changes nothing. About 160 spec files (near 500 bottle
 * documents, tests/support/specMutations.ts) go through the built CLI, with no
 * terminal, against a stand-in Engine that records every request
 * (tests/support/recordingEngine.ts): creating bottles is not the point, and
 * the real Engine would make this minutes long.
 */
import { execFileSync, spawn } from "node:child_process"
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, assert, describe, it } from "vitest"
import { BIN } from "./support/docker.js"
import { startRecordingEngine } from "./support/recordingEngine.js"
import { makeCases, type FuzzCase } from "./support/specMutations.js"

/** Children at once: each is mostly Node starting up, so a few more than the CPUs keeps them busy. */
const CONCURRENCY = 6
/** A run that takes this long is hanging (a FIFO read, a runaway parse): that is a failure too. */
const RUN_TIMEOUT_MS = 20_000
/** Output kept per stream; a run may print more, but never needs to be shown more. */
const OUTPUT_LIMIT = 1024 * 1024

/** What must never reach a user, whatever the input. */
const FORBIDDEN: ReadonlyArray<readonly [RegExp, string]> = [
  [/^[ \t]+at (?:.+ \()?(?:(?:file:|node:|\/)[^\n]*:\d+:\d+|<anonymous>|native)\)?$/m, "a stack frame"],
  [/^[ \t]+at async /m, "a stack frame"],
  [/node:internal/, "node:internal"],
  [/Maximum call stack/, "a stack overflow"],
  [/\b(?:Range|Type|Reference|Syntax)Error\b/, "a JavaScript error name"],
  [/unexpected failure/, "an unexpected failure"]
]

interface Outcome {
  readonly target: string
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly timedOut: boolean
  readonly stdout: string
  readonly stderr: string
  readonly writes: ReadonlyArray<string>
}

const root = mkdtempSync(join(tmpdir(), "bottle-fuzz-"))
const specDir = join(root, "specs")
mkdirSync(join(specDir, "skills", "web-research"), { recursive: true })
writeFileSync(join(specDir, "skills", "web-research", "SKILL.md"), "# Web research\nSearch, then write notes.\n")
writeFileSync(join(specDir, "prompt.md"), "You review pull requests.\n")
const prefix = `fz${process.pid.toString(36)}`
afterAll(() => rmSync(root, { recursive: true, force: true }))

/** Writes a case's input next to the skill dir and prompt file; returns what to give `-f`. */
const materialise = (c: FuzzCase, i: number): string => {
  const { input } = c
  const at = (ext: string) => join(specDir, `case-${i}${ext === "" ? "" : `.${ext}`}`)
  switch (input.kind) {
    case "file": {
      const p = at(input.ext)
      writeFileSync(p, input.bytes)
      return p
    }
    case "fifo": {
      const p = at(input.ext)
      execFileSync("mkfifo", [p])
      return p
    }
    case "dir": {
      const d = at("")
      mkdirSync(d)
      for (const e of input.entries) {
        const p = join(d, e.name)
        if ("bytes" in e) writeFileSync(p, e.bytes)
        else if ("fifo" in e) execFileSync("mkfifo", [p])
        else if ("dir" in e) mkdirSync(p)
        else symlinkSync(e.symlink, p)
      }
      return d
    }
    case "path":
      return input.path
  }
}

/** The environment of a user with nothing bottle-specific set, pointed at the stand-in Engine. */
const baseEnv = Object.fromEntries(
  Object.entries(process.env).filter(([k]) => !/^(BOTTLE_|DOCKER_|NODE_OPTIONS$|FORCE_COLOR$)/.test(k))
)

const run = async (c: FuzzCase, i: number): Promise<Outcome> => {
  const target = materialise(c, i)
  const runDir = join(root, `run-${i}`)
  mkdirSync(runDir)
  const engine = await startRecordingEngine(join(runDir, "engine.sock"))
  try {
    const child = spawn(process.execPath, [BIN, "apply", "-f", target, "--yes"], {
      env: {
        ...baseEnv,
        NO_COLOR: "1",
        DOCKER_HOST: `unix://${engine.socketPath}`,
        BOTTLE_HOME: join(runDir, "home"),
        BOTTLE_PREFIX: prefix,
        BOTTLE_SMOLVM: "/nonexistent/smolvm",
        BOTTLE_LOCK_WAIT: "0",
        BOTTLE_DOCKER_TIMEOUT: "5"
      },
      stdio: ["ignore", "pipe", "pipe"]
    })
    const collect = (stream: NodeJS.ReadableStream) => {
      const chunks: Array<Buffer> = []
      let size = 0
      stream.on("data", (b: Buffer) => {
        if (size < OUTPUT_LIMIT) chunks.push(b)
        size += b.length
      })
      return () => Buffer.concat(chunks).toString("utf8")
    }
    const stdout = collect(child.stdout!)
    const stderr = collect(child.stderr!)
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      child.kill("SIGKILL")
    }, RUN_TIMEOUT_MS)
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.on("close", (code, signal) => resolve([code, signal])))
    clearTimeout(timer)
    return { target, code, signal, timedOut, stdout: stdout(), stderr: stderr(), writes: engine.writes() }
  } finally {
    await engine.close()
  }
}

/** Everything wrong with one run, as sentences; empty when the property holds. */
const problemsOf = (c: FuzzCase, o: Outcome): ReadonlyArray<string> => {
  const out: Array<string> = []
  if (o.timedOut) out.push(`did not end within ${RUN_TIMEOUT_MS / 1000} s (killed)`)
  else if (o.signal !== null) out.push(`ended by ${o.signal}`)
  else if (o.code !== 0 && o.code !== 1 && o.code !== 2) out.push(`exit code ${o.code}`)
  for (const [name, text] of [["stdout", o.stdout], ["stderr", o.stderr]] as const) {
    for (const [pattern, what] of FORBIDDEN) {
      const m = pattern.exec(text)
      if (m) out.push(`${name} shows ${what}: ${JSON.stringify(text.slice(m.index, m.index + 120).split("\n")[0])}`)
    }
  }
  if (o.code === 2 && !o.stderr.includes(o.target)) out.push(`exited 2 without naming ${o.target} on stderr`)
  if (o.code === 2 && o.writes.length > 0) out.push(`exited 2 after changing things on the engine: ${o.writes.slice(0, 3).join(", ")}`)
  if (c.valid && (o.code === 2 || o.writes.length === 0)) out.push(`a valid seed was refused or never reached the engine (exit ${o.code})`)
  return out
}

const clip = (s: string, n: number) => (s.length > n ? `${s.slice(0, n)}… (${s.length - n} more characters)` : s)
const indent = (s: string) => s.replace(/^/gm, "      ")

const describeInput = (c: FuzzCase): string => {
  const { input } = c
  switch (input.kind) {
    case "file": return `${input.bytes.length} bytes: ${clip(JSON.stringify(input.bytes.subarray(0, 400).toString("utf8")), 400)}`
    case "dir": return `a directory holding ${JSON.stringify(input.entries.map((e) => ("bytes" in e ? { ...e, bytes: `${e.bytes.length} bytes` } : e)))}`
    case "fifo": return "a FIFO nobody writes to"
    case "path": return input.path
  }
}

const report = (failures: ReadonlyArray<{ c: FuzzCase; o: Outcome; problems: ReadonlyArray<string> }>, total: number) =>
  [
    `${failures.length} of ${total} spec files broke the property:`,
    ...failures.map(({ c, o, problems }) =>
      [
        `  ✗ ${c.name}`,
        ...problems.map((p) => `      - ${p}`),
        `      input (-f ${o.target}): ${describeInput(c)}`,
        `      exit ${o.code ?? o.signal}; engine writes: ${o.writes.length}`,
        `      stderr:\n${indent(clip(o.stderr.trimEnd(), 1500))}`,
        ...(o.stdout.trim() === "" ? [] : [`      stdout:\n${indent(clip(o.stdout.trimEnd(), 600))}`])
      ].join("\n"))
  ].join("\n")

/** Runs every case, CONCURRENCY at a time; results in case order. */
const runAll = async (cases: ReadonlyArray<FuzzCase>) => {
  const outcomes: Array<Outcome> = new Array(cases.length)
  let next = 0
  const worker = async () => {
    while (next < cases.length) {
      const i = next++
      outcomes[i] = await run(cases[i]!, i)
    }
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, worker))
  return outcomes
}

describe("spec files, however mangled", () => {
  it("never show a user a stack trace, and a refused one names its file and changes nothing", async () => {
    assert(existsSync(BIN), `${BIN} is missing: run npm run build`)
    const cases = makeCases()
    const outcomes = await runAll(cases)
    const failures = cases
      .map((c, i) => ({ c, o: outcomes[i]!, problems: problemsOf(c, outcomes[i]!) }))
      .filter((f) => f.problems.length > 0)
    if (failures.length > 0) assert.fail(report(failures, cases.length))
  }, 240_000)
})
