/** A bottle's name as the spec and the command line take it (apart from the spec's schema: options read it at every start). */
import * as Schema from "effect/Schema"
import { BOTTLE_NAME_MAX, bottleNameProblem } from "./names.js"

export const BottleName = Schema.String.pipe(
  Schema.filter((s) => {
    const problem = bottleNameProblem(s)
    return problem === undefined ? true : `bottle name '${s}' ${problem}`
  }, { jsonSchema: { pattern: "^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$", maxLength: BOTTLE_NAME_MAX } }),
  Schema.annotations({ identifier: "BottleName", description: "RFC 1123 label, at most 40 characters" })
)
