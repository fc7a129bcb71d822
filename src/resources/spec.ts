/**
 * The spec file format: one `Bottle` per document, decoded strictly with
 * effect/Schema. The same definitions generate specs/bottle.schema.json.
 */
import { Schema } from "effect"
import { BOTTLE_NAME_MAX, bottleNameProblem } from "./names.js"
import { MIN_MEMORY_BYTES, parseMemory } from "./desired.js"

export const BottleName = Schema.String.pipe(
  Schema.filter((s) => {
    const problem = bottleNameProblem(s)
    return problem === undefined ? true : `bottle name '${s}' ${problem}`
  }, { jsonSchema: { pattern: "^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$", maxLength: BOTTLE_NAME_MAX } }),
  Schema.annotations({ identifier: "BottleName", description: "RFC 1123 label, at most 40 characters" })
)

const EnvName = Schema.String.pipe(
  Schema.pattern(/^[A-Za-z_][A-Za-z0-9_]*$/, { message: () => "environment variable names are letters, digits and '_', not starting with a digit" }),
  Schema.filter((s) => !["__proto__", "constructor", "prototype"].includes(s) || `'${s}' is not allowed as a key`)
)

/** A domain or a `*.`-wildcard domain, as pipelock's allow list takes them. */
const Domain = Schema.String.pipe(
  Schema.pattern(/^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i, {
    message: () => "expected a domain such as api.anthropic.com or *.github.com"
  }),
  Schema.annotations({ identifier: "Domain" })
)

/** Memory as Docker writes it: bytes, or a number with b, k, m or g. */
export const Memory = Schema.String.pipe(
  Schema.pattern(/^[0-9]+(\.[0-9]+)?[bkmg]?$/i, { message: () => "expected a size such as 512m or 4g" }),
  // Docker reads 0 as "no limit" and refuses less than 6 MiB: either would be a surprise at apply time.
  // (A refinement only sees what the pattern let through, so parseMemory cannot throw here.)
  Schema.filter((s) => parseMemory(s) >= MIN_MEMORY_BYTES || "must be at least 6m (Docker's smallest limit; 0 would mean no limit at all)"),
  Schema.annotations({ identifier: "Memory" })
)

const ImageRef = Schema.String.pipe(
  Schema.pattern(/^[a-z0-9][a-zA-Z0-9._\-/:@]*$/, { message: () => "expected an image reference such as claude-bottle:latest" })
)

const Resources = Schema.Struct({
  cpus: Schema.optional(Schema.Number.pipe(Schema.positive(), Schema.lessThanOrEqualTo(1024))),
  memory: Schema.optional(Memory),
  pids: Schema.optional(Schema.Int.pipe(Schema.positive()))
})

const Egress = Schema.Struct({
  allow: Schema.Array(Domain)
})

const SidecarOverride = Schema.Struct({ image: ImageRef })

export const BottleSpecBody = Schema.Struct({
  backend: Schema.optionalWith(Schema.Literal("docker", "smolmachines"), { default: () => "docker" as const }),
  image: ImageRef,
  command: Schema.optional(Schema.Array(Schema.String).pipe(Schema.minItems(1))),
  workdir: Schema.optional(Schema.String.pipe(Schema.startsWith("/"))),
  env: Schema.optional(Schema.Record({ key: EnvName, value: Schema.String })),
  prompt: Schema.optional(Schema.String),
  promptFile: Schema.optional(Schema.String.pipe(Schema.minLength(1))),
  skills: Schema.optional(Schema.Array(Schema.String.pipe(Schema.minLength(1)))),
  egress: Schema.optional(Egress),
  resources: Schema.optional(Resources),
  preserve: Schema.optional(Schema.Boolean),
  sidecars: Schema.optional(Schema.Struct({ egress: Schema.optional(SidecarOverride) }))
})

export const BottleDocument = Schema.Struct({
  apiVersion: Schema.Literal("bottle/v1"),
  kind: Schema.Literal("Bottle"),
  metadata: Schema.Struct({ name: BottleName }),
  spec: BottleSpecBody
}).annotations({ identifier: "Bottle", title: "bottle spec", description: "One bottle: an agent sandbox and the sidecars that fence it in." })

export type BottleDocument = typeof BottleDocument.Type
