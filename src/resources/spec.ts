/**
 * The spec file format: one `Bottle` per document, decoded strictly with
 * effect/Schema. The same definitions generate specs/bottle.schema.json.
 */
import * as Schema from "effect/Schema"
import { BottleName } from "./bottleName.js"
import { MAX_MEMORY_BYTES, MIN_MEMORY_BYTES, parseMemory } from "./desired.js"
import { parseAllowEntry } from "./egressRules.js"
import { parseGitRemoteUrl, parseHostKey } from "./gitRemote.js"
import { parseImageRef } from "./imageRef.js"

const EnvName = Schema.String.pipe(
  Schema.pattern(/^[A-Za-z_][A-Za-z0-9_]*$/, { message: () => "environment variable names are letters, digits and '_', not starting with a digit" }),
  Schema.maxLength(256, { message: () => "environment variable names are at most 256 characters" }),
  Schema.filter((s) => !["__proto__", "constructor", "prototype"].includes(s) || `'${s}' is not allowed as a key`)
)

/** `host`, `*.domain`, either with an optional `:port`: the one meaning of src/resources/egressRules.ts. */
const AllowEntry = Schema.String.pipe(
  Schema.filter((s) => {
    const r = parseAllowEntry(s)
    return typeof r === "string" ? `'${s.length > 80 ? `${s.slice(0, 80)}…` : s}': ${r}` : true
  }, { jsonSchema: { pattern: "^(\\*\\.)?[A-Za-z0-9.-]+\\.?(:[0-9]{1,5})?$" } }),
  Schema.annotations({ identifier: "AllowEntry", description: "host (that host only), *.domain (its subdomains, not itself), optional :port (default 443 and 80)" })
)

/** Memory as Docker writes it: bytes, or a number with b, k, m or g. */
export const Memory = Schema.String.pipe(
  Schema.pattern(/^[0-9]+(\.[0-9]+)?[bkmg]?$/i, { message: () => "expected a size such as 512m or 4g" }),
  // Docker reads 0 as "no limit" and refuses less than 6 MiB: either would be a surprise at apply time.
  // (A refinement only sees what the pattern let through, so parseMemory cannot throw here.)
  Schema.filter((s) => parseMemory(s) >= MIN_MEMORY_BYTES || "must be at least 6m (Docker's smallest limit; 0 would mean no limit at all)"),
  Schema.filter((s) => parseMemory(s) <= MAX_MEMORY_BYTES || "is more memory than any machine bottle runs on has (at most 1024g)"),
  Schema.annotations({ identifier: "Memory" })
)

const ImageRef = Schema.String.pipe(
  Schema.filter((s) => {
    const r = parseImageRef(s)
    return typeof r === "string" ? `image reference ${r}` : true
  }, { jsonSchema: { maxLength: 512 } }),
  Schema.annotations({ identifier: "ImageRef", description: "an image reference such as claude-bottle:latest" })
)

/** Linux's largest pid_max: more pids than a kernel can hand out is a typo. */
const MAX_PIDS = 4_194_304

const Resources = Schema.Struct({
  cpus: Schema.optional(Schema.Number.pipe(
    Schema.filter((n) => (Number.isFinite(n) && n >= 0.01) || "must be at least 0.01 (Docker's smallest CPU share)"),
    Schema.lessThanOrEqualTo(1024)
  )),
  memory: Schema.optional(Memory),
  pids: Schema.optional(Schema.Int.pipe(Schema.positive(), Schema.lessThanOrEqualTo(MAX_PIDS)))
}).annotations({ identifier: "a mapping of cpus, memory and pids" })

const Egress = Schema.Struct({
  allow: Schema.Array(AllowEntry),
  /** mitmproxy (default) or pipelock. */
  proxy: Schema.optional(Schema.Literal("mitmproxy", "pipelock")),
  /** Extra CA certificates (PEM files) the proxy trusts for upstreams whose TLS it opens (hosts with injected secrets). */
  trust: Schema.optional(Schema.Array(Schema.String.pipe(Schema.minLength(1))))
}).annotations({ identifier: "a mapping of allow, proxy and trust" })

/** An HTTP header name (RFC 9110 token). */
const HeaderName = Schema.String.pipe(Schema.pattern(/^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$/, { message: () => "expected an HTTP header name such as x-api-key" }))

/** A host an injected secret goes to: exactly one host, as egress.allow writes it (no wildcard, no port). */
const InjectHost = Schema.String.pipe(
  Schema.filter((s) => {
    const r = parseAllowEntry(s)
    if (typeof r === "string") return `'${s}': ${r}`
    return (!r.wildcard && !s.includes(":")) || "one host, without a wildcard or a port"
  })
)

const Secret = Schema.Struct({
  /** `env:VAR` (a variable of bottle's own environment) or `file:PATH` (relative to the spec file, `~` is your home). */
  from: Schema.String.pipe(Schema.pattern(/^(env:[A-Za-z_][A-Za-z0-9_]*|file:.+)$/, { message: () => "expected env:VARIABLE or file:PATH" })),
  /** The proxy puts the value in this header of requests to this host; the agent sees only a placeholder. */
  inject: Schema.optional(Schema.Struct({
    host: InjectHost,
    header: HeaderName,
    format: Schema.optional(Schema.String.pipe(Schema.includes("{value}", { message: () => "must hold {value}, where the secret goes" })))
  }).annotations({ identifier: "a mapping of host, header and format" }))
}).annotations({ identifier: "a mapping of from and inject" })

/** An image built from a context directory through the Engine, instead of `image`. */
const Build = Schema.Struct({
  context: Schema.String.pipe(Schema.minLength(1)),
  dockerfile: Schema.optional(Schema.String.pipe(Schema.minLength(1))),
  args: Schema.optional(Schema.Record({ key: Schema.String.pipe(Schema.pattern(/^[A-Za-z_][A-Za-z0-9_]*$/)), value: Schema.String }).annotations({ identifier: "a mapping of build argument names to strings" }))
}).annotations({ identifier: "a mapping of context, dockerfile and args" })

const SidecarOverride = Schema.Struct({ image: ImageRef }).annotations({ identifier: "a mapping with image" })

/** A remote the git gate fronts: the agent fetches (and, with push, pushes) only through the gate. */
const GitRemote = Schema.Struct({
  /** The gate's name for it: git://git:9418/<name>.git. */
  name: Schema.String.pipe(Schema.pattern(/^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/, { message: () => "remote names are lowercase letters, digits and '-' (at most 32)" })),
  /** ssh://user@host[:port]/path or user@host:path (see gitRemote.ts). */
  url: Schema.String.pipe(
    Schema.filter((s) => {
      const r = parseGitRemoteUrl(s)
      return typeof r === "string" ? `'${s.length > 80 ? `${s.slice(0, 80)}…` : s}': ${r}` : true
    }),
    Schema.annotations({ description: "ssh://user@host[:port]/path or user@host:path" })
  ),
  /** Whether the agent may push (scanned for secrets, then forwarded upstream). Default false. */
  push: Schema.optional(Schema.Boolean),
  /** The name of a secret (under secrets:) holding the SSH private key the gate uses; the agent never sees it. */
  sshKey: Schema.optional(EnvName)
}).annotations({ identifier: "a mapping of name, url, push and sshKey" })

const HostKeyLine = Schema.String.pipe(
  Schema.filter((s) => {
    const r = parseHostKey(s)
    return typeof r === "string" ? `host key ${r}` : true
  }),
  Schema.annotations({ description: "a known_hosts line: host key-type base64-key" })
)

const Git = Schema.Struct({
  remotes: Schema.Array(GitRemote).pipe(Schema.minItems(1)),
  /** The upstream hosts' SSH keys, pinned (no trust on first use): one known_hosts line each. */
  hostKeys: Schema.Array(HostKeyLine).pipe(Schema.minItems(1))
}).annotations({ identifier: "a mapping of remotes and hostKeys" })

/** A DNS label, as Kubernetes names namespaces and runtime classes. */
const KubeName = Schema.String.pipe(Schema.pattern(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, { message: () => "expected a DNS label: lowercase letters, digits and '-', at most 63" }))

export const BottleSpecBody = Schema.Struct({
  backend: Schema.optionalWith(Schema.Literal("docker", "smolmachines", "kubernetes"), { default: () => "docker" as const }),
  /** Kubernetes: the namespace of this bottle's set (default `bottle-<set>`); bottle never makes or deletes it. */
  namespace: Schema.optional(KubeName),
  /** Kubernetes: the pods' runtime class (gVisor, Kata), when the cluster has one. */
  runtimeClassName: Schema.optional(KubeName),
  /** The agent's image; or `build` to have bottle build it. */
  image: Schema.optional(ImageRef),
  build: Schema.optional(Build),
  command: Schema.optional(Schema.Array(Schema.String).pipe(Schema.minItems(1))),
  workdir: Schema.optional(Schema.String.pipe(Schema.startsWith("/"))),
  env: Schema.optional(Schema.Record({ key: EnvName, value: Schema.String }).annotations({ identifier: "a mapping of variable names to strings" })),
  prompt: Schema.optional(Schema.String),
  promptFile: Schema.optional(Schema.String.pipe(Schema.minLength(1))),
  skills: Schema.optional(Schema.Array(Schema.String.pipe(Schema.minLength(1)))),
  egress: Schema.optional(Egress),
  resources: Schema.optional(Resources),
  preserve: Schema.optional(Schema.Boolean),
  /** A host directory mounted read-write at the workdir (relative to the spec file), instead of the state dir's workspace/. */
  workspace: Schema.optional(Schema.String.pipe(Schema.minLength(1))),
  /** `uid[:gid]` or a user name the agent runs as (default: its image's). */
  user: Schema.optional(Schema.String.pipe(Schema.pattern(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,31})?$/, { message: () => "expected uid, uid:gid or a user name" }))),
  secrets: Schema.optional(Schema.Record({ key: EnvName, value: Secret }).annotations({ identifier: "a mapping of secret names to secrets" })),
  /** The git gate: a sidecar fronting each remote; the agent's git goes through it. */
  git: Schema.optional(Git),
  /** The supervisor: an MCP server the agent asks for what its fence refuses; a person decides (bottle requests, approve, deny). */
  supervise: Schema.optional(Schema.Boolean),
  sidecars: Schema.optional(Schema.Struct({
    egress: Schema.optional(SidecarOverride),
    git: Schema.optional(SidecarOverride),
    supervise: Schema.optional(SidecarOverride)
  }).annotations({ identifier: "a mapping of sidecars (egress, git, supervise)" }))
}).annotations({ identifier: "a mapping of bottle fields" })

export const BottleDocument = Schema.Struct({
  apiVersion: Schema.Literal("bottle/v1"),
  kind: Schema.Literal("Bottle"),
  metadata: Schema.Struct({ name: BottleName }).annotations({ identifier: "a mapping with name" }),
  spec: BottleSpecBody
}).annotations({ identifier: "Bottle", title: "bottle spec", description: "One bottle: an agent sandbox and the sidecars that fence it in." })

export type BottleDocument = typeof BottleDocument.Type
