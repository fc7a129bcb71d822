/**
 * Builds the one MainLayer and runs the command tree; maps every way a
 * command can end to the design's exit codes.
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import * as NodeTerminal from "@effect/platform-node/NodeTerminal"
import * as ValidationError from "@effect/cli/ValidationError"
import { stripVTControlCharacters } from "node:util"
import * as Cause from "effect/Cause"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import { formatProblem } from "../resources/specError.js"
import { EnvError, readSettings } from "../resources/settings.js"
import { cli, handlerRan } from "./command.js"
import * as Confirm from "./confirm.js"
import { installInterruption, Interruption } from "./interrupt.js"
import { err, useColour } from "./output.js"
import { SettingsTag } from "./settings.js"

/**
 * @effect/cli writes its help and usage errors in ANSI colour wherever they go; they are made plain by
 * the rule bottle's own output follows (colour only for a terminal, and no NO_COLOR), so that `bottle
 * --help | less` or a log file gets text.
 */
const plainUnlessColour = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Console.consoleWith((c) => {
    const plain = (stream: NodeJS.WriteStream) => (args: ReadonlyArray<unknown>): ReadonlyArray<unknown> =>
      useColour(stream) ? args : args.map((a) => (typeof a === "string" ? stripVTControlCharacters(a) : a))
    const [toOut, toErr] = [plain(process.stdout), plain(process.stderr)]
    return Console.withConsole(self, {
      ...c,
      log: (...args) => c.log(...toOut(args)),
      info: (...args) => c.info(...toOut(args)),
      error: (...args) => c.error(...toErr(args)),
      warn: (...args) => c.warn(...toErr(args))
    })
  })

/**
 * What the command line needs of the platform: NodeContext.layer without its worker manager, which bottle
 * never uses (its error schema alone was 6 ms of every start), and without the command executor, which
 * engines.ts gives the commands that run smolvm.
 */
const Platform = Layer.mergeAll(NodePath.layer, NodeTerminal.layer).pipe(Layer.provideMerge(NodeFileSystem.layer))

/** Runs the command line; says how it ended and which command's handler ran (for the compile cache). */
export const main = async (argv: ReadonlyArray<string>): Promise<{ readonly code: number; readonly ran: string | undefined }> =>
  ({ code: await run(argv), ran: handlerRan() })

const run = async (argv: ReadonlyArray<string>): Promise<number> => {
  let settings
  try {
    settings = readSettings()
  } catch (e) {
    if (e instanceof EnvError) { err(`error: ${e.message}`); return 2 }
    throw e
  }
  let fiber: Fiber.RuntimeFiber<number> | undefined
  let aborted: string | undefined
  const interruption = installInterruption(
    (signal) => {
      aborted = signal
      if (fiber !== undefined) Effect.runFork(Fiber.interrupt(fiber))
    },
    (signal) => {
      err(`\n${signal} again: stopping at once; the lock is left for the next command to take over`)
      process.exit(130)
    }
  )
  const MainLayer = Layer.mergeAll(
    Layer.succeed(SettingsTag, settings),
    Layer.succeed(Interruption, interruption),
    Confirm.layer,
    Platform
  )
  const program = cli(argv).pipe(
    plainUnlessColour,
    Effect.as(0),
    Effect.catchTags({
      ExitCode: (e) => Effect.succeed(e.code),
      SpecError: (e) => Effect.sync(() => {
        err(e.problems.map((p) => `error: ${formatProblem(p)}`).join("\n"))
        err("Nothing was changed.")
        return 2
      }),
      LockHeld: (e) => Effect.sync(() => { err(`error: ${e.message}`); return 2 }),
      LockError: (e) => Effect.sync(() => { err(`error: ${e.message}`); return 2 })
    }),
    Effect.catchIf(ValidationError.isValidationError, () => Effect.succeed(2)),
    Effect.provide(MainLayer)
  )
  fiber = Effect.runFork(program)
  const exit = await Effect.runPromise(Fiber.await(fiber))
  if (Exit.isSuccess(exit)) return exit.value
  if (aborted !== undefined && Exit.isInterrupted(exit)) {
    err(`${aborted}: interrupted before anything was changed.`)
    return 130
  }
  err(`bottle: unexpected failure:\n${Cause.pretty(exit.cause)}`)
  return 2
}
