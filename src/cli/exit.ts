import { Data } from "effect"

/** Ends the command with this exit code; the message, if any, was already printed. */
export class ExitCode extends Data.TaggedError("ExitCode")<{ readonly code: 1 | 2 | 130 }> {}

export const exitWith = (code: 1 | 2 | 130) => new ExitCode({ code })
