/**
 * A thin client for the `smolvm` command line (the contract bottle relies on is
 * /work/shared/smolvm-cli.md), run through @effect/platform's Command. Only
 * exit codes, `Error:` lines and `--json` output are read: progress text is not
 * a contract. The observer reads through it and the executor acts through it.
 */
import * as Command from "@effect/platform/Command"
import * as CommandExecutor from "@effect/platform/CommandExecutor"
import { accessSync, constants as fsConstants, statSync } from "node:fs"
import { join } from "node:path"
import type { PlatformError } from "@effect/platform/Error"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import type { ObservedMachine, SmolvmSnapshot, Source } from "../resources/observed.js"
import type { MachineSpec } from "../resources/realiseSmolmachines.js"

/** `--label` and the `labels` field arrived in 1.8.0, and egress flags are honoured everywhere from then on. */
export const MIN_VERSION = "1.8.0"

export type SmolvmErrorReason = "NotInstalled" | "TooOld" | "NotFound" | "AlreadyExists" | "Failed" | "BadOutput" | "Timeout"

/** A failed smolvm invocation, with the reason callers may absorb. */
export class SmolvmError extends Data.TaggedError("SmolvmError")<{
  readonly reason: SmolvmErrorReason
  /** The command line as a user could retype it (create's values are left out: they hold the bottle's env). */
  readonly command: string
  readonly detail: string
}> {
  override get message(): string {
    switch (this.reason) {
      case "NotInstalled":
        return `${this.command} failed: smolvm is not installed (${this.detail}); smolmachines bottles need smolvm ≥ ${MIN_VERSION}`
      case "Timeout":
        return `${this.command} did not finish within ${this.detail} and was stopped`
      case "TooOld":
      case "BadOutput":
        return `${this.command}: ${this.detail}`
      default:
        return `${this.command} failed: ${this.detail}`
    }
  }
}

export interface SmolvmShape {
  /** The executable run, as configured. */
  readonly binary: string
  /** The version `smolvm --version` reports (`X.Y.Z`), checked against MIN_VERSION. */
  readonly version: Effect.Effect<string, SmolvmError>
  /** Every machine but ephemeral ones, which belong to `smolvm machine run`, not to bottles. */
  readonly list: Effect.Effect<ReadonlyArray<ObservedMachine>, SmolvmError>
  readonly create: (
    spec: MachineSpec,
    /** `allowCidr` undefined: the machine gets no network at all. */
    extra: { readonly allowCidr: string | undefined; readonly env: ReadonlyArray<string>; readonly labels: Readonly<Record<string, string>> }
  ) => Effect.Effect<void, SmolvmError>
  /** Succeeds when the machine already runs. */
  readonly start: (name: string) => Effect.Effect<void, SmolvmError>
  /** Succeeds when the machine is already stopped. */
  readonly stop: (name: string) => Effect.Effect<void, SmolvmError>
  /** Stops the machine if it runs, then deletes it. */
  readonly delete: (name: string) => Effect.Effect<void, SmolvmError>
  /**
   * Runs a command in a running machine with this process's stdin, stdout and
   * stderr, and returns its exit code (smolvm passes the command's on).
   */
  readonly exec: (name: string, cmd: ReadonlyArray<string>, opts: { readonly interactive: boolean; readonly tty: boolean; readonly env: ReadonlyArray<string>; readonly workdir: string | undefined }) => Effect.Effect<number, SmolvmError>
}

export class Smolvm extends Context.Tag("bottle/Smolvm")<Smolvm, SmolvmShape>() {}

export interface SmolvmOptions {
  /** The executable: callers pass `process.env.BOTTLE_SMOLVM ?? "smolvm"`. */
  readonly binary: string
  /** Bound on every invocation (default 30 s); the child is killed when it runs out. */
  readonly timeout?: Duration.DurationInput
  /** Bound on `create` and `start`: the contract does not say which one pulls the image (default 10 minutes). */
  readonly pullTimeout?: Duration.DurationInput
  /** Added to the child's environment (which otherwise is ours). */
  readonly env?: Readonly<Record<string, string>>
}

const Labels = Schema.Record({ key: Schema.String, value: Schema.String })

/**
 * Only what bottle reads. Struct ignores the other keys, which grow with every
 * release; `state` stays a plain string: an unknown state is kept, not an error.
 */
const LsMachine = Schema.Struct({
  name: Schema.String,
  state: Schema.String,
  labels: Schema.optional(Schema.NullOr(Labels)),
  image: Schema.optional(Schema.NullOr(Schema.String)),
  ephemeral: Schema.optional(Schema.NullOr(Schema.Boolean)),
  cpus: Schema.optional(Schema.NullOr(Schema.Number)),
  memory_mib: Schema.optional(Schema.NullOr(Schema.Number)),
  network: Schema.optional(Schema.NullOr(Schema.Boolean)),
  mounts: Schema.optional(Schema.NullOr(Schema.Number)),
  ports: Schema.optional(Schema.NullOr(Schema.Number))
})
const decodeLs = Schema.decodeUnknownEither(Schema.Array(LsMachine))

const VERSION_LINE = /^smolvm\s+v?((\d+)\.(\d+)\.(\d+)(?:[-+][0-9A-Za-z.+-]*)?)$/

/**
 * True when `[major, minor, patch]` is at least MIN_VERSION. As in semver, a
 * pre-release of the minimum itself (`1.8.0-rc.1`) comes before it; build
 * metadata (`+abc`) does not count.
 */
const atLeastMin = (v: ReadonlyArray<number>, preRelease: boolean): boolean => {
  const min = MIN_VERSION.split(".").map(Number)
  for (let i = 0; i < 3; i++) if (v[i]! !== min[i]!) return v[i]! > min[i]!
  return !preRelease
}

/** What the child did: exit code and everything it printed. */
interface Ran {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

/** The `Error:` line smolvm prints on failure; otherwise the exit code and stderr's first line (clap's usage errors). */
const errorLine = (r: Ran): string => {
  const lines = r.stderr.split("\n").map((l) => l.trim()).filter((l) => l !== "")
  const error = lines.find((l) => l.startsWith("Error:"))
  if (error !== undefined) return error
  const first = lines[0]
  return first === undefined ? `exit code ${r.code}, nothing on stderr` : `exit code ${r.code}: ${first}`
}

/** One line of a schema or JSON error, short enough for a status table. */
const oneLine = (text: string): string => {
  const flat = text.replace(/\s+/g, " ").trim()
  return flat.length > 300 ? `${flat.slice(0, 297)}...` : flat
}

/** `ls --json`'s stdout, or what is wrong with it: not JSON, or the first element that lacks what bottle reads. */
const parseLs = (stdout: string): Either.Either<ReadonlyArray<typeof LsMachine.Type>, string> => {
  let json: unknown
  try {
    json = JSON.parse(stdout)
  } catch (e) {
    return Either.left(`not JSON (${(e as Error).message}): ${oneLine(stdout).slice(0, 120)}`)
  }
  return Either.mapLeft(decodeLs(json), (e) => {
    const issue = ParseResult.ArrayFormatter.formatErrorSync(e)[0]
    if (issue === undefined) return oneLine(e.message)
    const at = issue.path.map((k) => (typeof k === "number" ? `[${k}]` : `.${String(k)}`)).join("")
    return `${at === "" ? "" : `at ${at}: `}${issue.message}`
  })
}

/**
 * How long the pipes may stay open once the child has exited: a background
 * process it left behind (a VM monitor, say) may hold them for its lifetime,
 * and its output is none of ours.
 */
const PIPE_GRACE = Duration.seconds(2)

/**
 * Whether `binary` names an executable file, as exec would find it (a name
 * without a slash is looked up on PATH). Most hosts have no smolvm; this
 * answers "not installed" without the cost of a spawn that fails.
 */
const executable = (binary: string, path = process.env["PATH"] ?? ""): boolean => {
  const candidates = binary.includes("/") ? [binary] : path.split(":").map((d) => join(d === "" ? "." : d, binary))
  return candidates.some((c) => {
    try {
      accessSync(c, fsConstants.X_OK)
      return statSync(c).isFile()
    } catch {
      return false
    }
  })
}

const make = (opts: SmolvmOptions) =>
  Effect.gen(function* () {
    const executor = yield* CommandExecutor.CommandExecutor
    const timeout = Duration.decode(opts.timeout ?? Duration.seconds(30))
    const binary = opts.binary
    const fail = (command: string, reason: SmolvmErrorReason, detail: string) => new SmolvmError({ reason, command, detail })

    /** Runs `binary args`; any exit code is a result, only not running it (or its dying of a signal) is an error. */
    const run = (args: ReadonlyArray<string>, display: string, bound: Duration.Duration = timeout): Effect.Effect<Ran, SmolvmError> => {
      if (!executable(binary, opts.env?.["PATH"] ?? process.env["PATH"])) return Effect.fail(fail(display, "NotInstalled", `${binary}: no such file`))
      const command = Command.make(binary, ...args).pipe(
        Command.env(opts.env ?? {}),
        // An empty, closed stdin: smolvm never gets to wait for an answer (delete's prompt, for one).
        Command.stdin(Stream.empty)
      )
      return Effect.gen(function* () {
        const proc = yield* executor.start(command)
        const stdout: Array<string> = []
        const stderr: Array<string> = []
        const collect = (s: Stream.Stream<Uint8Array, PlatformError>, into: Array<string>) =>
          s.pipe(Stream.decodeText(), Stream.runForEach((chunk) => Effect.sync(() => into.push(chunk))))
        const reading = yield* Effect.fork(Effect.all([collect(proc.stdout, stdout), collect(proc.stderr, stderr)], { concurrency: 2, discard: true }))
        const code = yield* proc.exitCode
        const done = yield* Fiber.join(reading).pipe(Effect.timeoutOption(PIPE_GRACE))
        if (Option.isNone(done)) yield* Fiber.interrupt(reading)
        return { code, stdout: stdout.join(""), stderr: stderr.join("") }
      }).pipe(
        Effect.scoped,
        Effect.mapError((e) =>
          e._tag === "SystemError" && e.reason === "NotFound" && e.method === "spawn"
            ? fail(display, "NotInstalled", `${binary}: no such file`)
            : fail(display, "Failed", e.message)
        ),
        // Interrupting the scoped effect kills the child's process group and waits for it.
        Effect.timeoutFail({ duration: bound, onTimeout: () => fail(display, "Timeout", Duration.format(bound)) })
      )
    }

    /** Runs a machine command whose stdout is not read: exit 0 is success, the rest becomes a reason. */
    const act = (args: ReadonlyArray<string>, display: string, reasonFor: (line: string) => SmolvmErrorReason, bound: Duration.Duration = timeout) =>
      run(args, display, bound).pipe(
        Effect.flatMap((r) => {
          if (r.code === 0) return Effect.void
          const line = errorLine(r)
          return Effect.fail(fail(display, r.code === 1 ? reasonFor(line) : "Failed", line))
        })
      )
    const notFound = (line: string): SmolvmErrorReason => (/^Error: vm not found\b/.test(line) ? "NotFound" : "Failed")
    const pullTimeout = Duration.decode(opts.pullTimeout ?? Duration.minutes(10))
    const byName = (verb: string, name: string, ...flags: ReadonlyArray<string>) => {
      const args = ["machine", verb, "--name", name, ...flags]
      return act(args, [binary, ...args].join(" "), notFound, verb === "start" ? pullTimeout : timeout)
    }

    const versionArgs = ["--version"]
    const versionDisplay = `${binary} --version`
    const version = run(versionArgs, versionDisplay).pipe(
      Effect.flatMap((r) => {
        if (r.code !== 0) return Effect.fail(fail(versionDisplay, "Failed", errorLine(r)))
        const printed = r.stdout.trim()
        const m = VERSION_LINE.exec(printed)
        if (m === null) {
          const seen = printed === "" ? "nothing" : `"${oneLine(printed)}"`
          return Effect.fail(fail(versionDisplay, "BadOutput", `printed ${seen}, not "smolvm X.Y.Z"; smolmachines bottles need smolvm ≥ ${MIN_VERSION}`))
        }
        if (!atLeastMin([Number(m[2]), Number(m[3]), Number(m[4])], /^[^+]*-/.test(m[1]!))) {
          return Effect.fail(fail(versionDisplay, "TooOld", `smolvm ${m[1]} is too old: smolmachines bottles need smolvm ≥ ${MIN_VERSION} (machine labels and egress limits)`))
        }
        return Effect.succeed(m[1]!)
      })
    )

    const lsArgs = ["machine", "ls", "--json"]
    const lsDisplay = [binary, ...lsArgs].join(" ")
    const list = run(lsArgs, lsDisplay).pipe(
      Effect.flatMap((r) =>
        r.code !== 0
          ? Effect.fail(fail(lsDisplay, "Failed", errorLine(r)))
          : Either.match(parseLs(r.stdout), {
            onLeft: (why) => Effect.fail(fail(lsDisplay, "BadOutput", `unexpected output: ${why}`)),
            onRight: Effect.succeed
          })
      ),
      Effect.map((machines) =>
        machines
          .filter((m) => m.ephemeral !== true)
          .map((m): ObservedMachine => ({
            name: m.name,
            state: m.state,
            labels: m.labels ?? {},
            image: m.image ?? null,
            cpus: m.cpus ?? undefined,
            memoryMiB: m.memory_mib ?? undefined,
            network: m.network ?? undefined,
            mounts: m.mounts ?? undefined,
            ports: m.ports ?? undefined
          }))
      )
    )

    const create: SmolvmShape["create"] = (spec, extra) => {
      const labels: Record<string, string> = { ...spec.labels, ...extra.labels }
      const args = [
        "machine", "create", "--name", spec.name,
        "-I", spec.image,
        "--cpus", String(spec.cpus),
        "--mem", String(spec.memMiB),
        ...[...spec.env, ...extra.env].flatMap((e) => ["-e", e]),
        ...Object.keys(labels).sort().flatMap((k) => ["--label", `${k}=${labels[k]}`]),
        ...(extra.allowCidr !== undefined ? ["--allow-cidr", extra.allowCidr] : []),
        ...spec.volumes.flatMap((v) => ["-v", v]),
        "-w", spec.workdir
      ]
      return act(args, `${binary} machine create --name ${spec.name}`, (line) => (/already exists/.test(line) ? "AlreadyExists" : "Failed"), pullTimeout)
    }

    const exec: SmolvmShape["exec"] = (name, cmd, o) => {
      const args = [
        "machine", "exec", "--name", name,
        ...o.env.flatMap((e) => ["-e", e]),
        ...(o.workdir !== undefined ? ["-w", o.workdir] : []),
        ...(o.interactive ? ["-i"] : []),
        ...(o.tty ? ["-t"] : []),
        "--", ...cmd
      ]
      const display = `${binary} machine exec --name ${name}`
      return Command.make(binary, ...args).pipe(
        Command.env(opts.env ?? {}),
        Command.stdin(o.interactive ? "inherit" : Stream.empty),
        Command.stdout("inherit"),
        Command.stderr("inherit"),
        (c) => executor.start(c),
        Effect.flatMap((p) => p.exitCode),
        Effect.scoped,
        Effect.map((code) => Number(code)),
        Effect.mapError((e) =>
          e._tag === "SystemError" && e.reason === "NotFound" && e.method === "spawn" ? fail(display, "NotInstalled", `${binary}: no such file`) : fail(display, "Failed", e.message)
        )
      )
    }

    return Smolvm.of({
      binary,
      exec,
      version,
      list,
      create,
      start: (name) => byName("start", name),
      stop: (name) => byName("stop", name),
      // Always -f: without it smolvm asks on stdin and, with no terminal, says `Cancelled` and exits 0 having deleted nothing.
      delete: (name) => byName("delete", name, "-f")
    })
  })

/** The live client: needs a CommandExecutor (engines.ts gives it NodeCommandExecutor.layer). */
export const layer = (opts: SmolvmOptions): Layer.Layer<Smolvm, never, CommandExecutor.CommandExecutor> => Layer.effect(Smolvm, make(opts))

/**
 * The observer as a Source: version check, then the list. Not installed, or
 * older than bottle can use, is `Unavailable`: bottle cannot have made
 * machines with it, so a Docker-only host works as before (the planner still
 * keeps smolmachines bottles' state). Any other failure is recorded, never
 * turned into an empty snapshot.
 */
export const smolvmSource: Effect.Effect<Source<SmolvmSnapshot>, never, Smolvm> = Effect.gen(function* () {
  const smolvm = yield* Smolvm
  const version = yield* smolvm.version
  const machines = yield* smolvm.list
  return { _tag: "Ok", value: { version, machines } } as const
}).pipe(
  Effect.catchTag("SmolvmError", (e) =>
    Effect.succeed<Source<SmolvmSnapshot>>(
      e.reason === "NotInstalled" || e.reason === "TooOld" ? { _tag: "Unavailable", source: "smolvm", reason: e.message } : { _tag: "Failed", source: "smolvm", error: e.message }
    )
  )
)
