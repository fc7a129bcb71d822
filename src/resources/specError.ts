import * as Data from "effect/Data"

/** One problem in a spec file, located for the user. */
export interface SpecProblem {
  readonly file: string
  readonly line: number
  readonly column: number
  /** Dotted field path, e.g. `spec.env.A`, or "" for the whole document. */
  readonly field: string
  readonly message: string
}

export const formatProblem = (p: SpecProblem): string =>
  `${p.file}:${p.line}:${p.column}: ${p.field === "" ? "" : `${p.field}: `}${p.message}`

/** The spec files could not be loaded; nothing was changed. Exit code 2. */
export class SpecError extends Data.TaggedError("SpecError")<{ readonly problems: ReadonlyArray<SpecProblem> }> {
  override get message(): string {
    return this.problems.map(formatProblem).join("\n")
  }
}
