/**
 * Ctrl-C and SIGTERM. Before anything changes, the command stops at once
 * (the lock is released as it unwinds). Once actions run, nothing new
 * starts, running actions get a short grace to end, and the report of what
 * was done and skipped is printed; the command then exits 130. A second
 * signal ends the process at once.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type { StopRequest } from "../reconcilers/execute.js"

/** How long running actions may take to end once a stop is asked for. */
export const STOP_GRACE_SECONDS = 10

export interface InterruptionShape {
  /** The signal that asked for a stop, if one did. */
  readonly requested: () => string | undefined
  /** For the executor: nothing new starts once a stop is asked for. */
  readonly stop: StopRequest
  /** Marks the start of execution: from then on a signal stops the plan instead of the command. */
  readonly executing: Effect.Effect<void>
}

export class Interruption extends Context.Tag("bottle/Interruption")<Interruption, InterruptionShape>() {}

/**
 * Installs the signal handlers. `abort` ends the command (before execution);
 * `forceExit` ends the process (a second signal).
 */
export const installInterruption = (abort: (signal: string) => void, forceExit: (signal: string) => void): InterruptionShape => {
  let requested: string | undefined
  let executing = false
  let wake: () => void = () => undefined
  const signalled = new Promise<void>((resolve) => { wake = resolve })
  const onSignal = (signal: NodeJS.Signals) => {
    if (requested !== undefined) return forceExit(signal)
    requested = signal
    wake()
    if (!executing) abort(signal)
    else process.stderr.write(`\n${signal}: starting nothing new; waiting up to ${STOP_GRACE_SECONDS}s for running actions (again to quit at once)\n`)
  }
  process.on("SIGINT", onSignal)
  process.on("SIGTERM", onSignal)
  return {
    requested: () => requested,
    stop: { requested: () => requested !== undefined, signalled: Effect.promise(() => signalled), grace: `${STOP_GRACE_SECONDS} seconds` },
    executing: Effect.sync(() => { executing = true })
  }
}
