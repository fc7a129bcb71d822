import * as Data from "effect/Data"

/** Ends the command with this exit code; the message, if any, was already printed. */
export class ExitCode extends Data.TaggedError("ExitCode")<{ readonly code: number }> {}

/** 1 and 2 are bottle's own (see the README); 130 an interrupted run; anything else is a command's own (bottle exec). */
export const exitWith = (code: number) => new ExitCode({ code })
