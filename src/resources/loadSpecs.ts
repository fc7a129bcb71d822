/**
 * Loads spec files (`-f`, repeatable, files or directories) into desired
 * bottles. Every problem names file, line, column and field; any problem
 * fails the whole load, so nothing is changed on bad input.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import { builtImageTag, sidecarImageTag } from "./buildTag.js"
import { DEFAULT_MEMORY_BYTES, DEFAULT_PIDS, parseMemory, type DesiredBottle, type DesiredBuild, type DesiredGit, type DesiredSecret, type DesiredSupervise } from "./desired.js"
import { parseGitRemoteUrl, parseHostKey } from "./gitRemote.js"
import { allowedBy, normaliseHost, parseAllowEntry } from "./egressRules.js"
import { digestOf, readSecret } from "./secrets.js"
import { formatBytes, hostPathProblem, readBoundedFile, readTree, realPathOf, type CopiedTree, type HostContext } from "./hostPaths.js"
import { MAX_SPEC_BYTES, nearest, pathText, type ParsedDocument } from "./specPositions.js"
import { BottleDocument } from "./spec.js"
import { SpecError, type SpecProblem } from "./specError.js"
import { byText } from "./order.js"

const SPEC_EXTENSIONS = /\.(ya?ml|toml)$/i

const decode = Schema.decodeUnknownEither(BottleDocument, { onExcessProperty: "error", errors: "all" })

/** A union's members each say "Expected X, actual V" at one path: one line says "Expected X | Y, actual V". */
const mergeAlternatives = <I extends { readonly path: ReadonlyArray<PropertyKey>; readonly message: string }>(issues: ReadonlyArray<I>): ReadonlyArray<I> => {
  const out: Array<I> = []
  const merged = new Map<string, { index: number; expected: Array<string>; actual: string }>()
  for (const i of issues) {
    const m = /^Expected (.+), actual (.+)$/s.exec(i.message)
    const key = JSON.stringify(i.path.map(String))
    const prev = merged.get(key)
    if (m && prev && prev.actual === m[2]) {
      prev.expected.push(m[1]!)
      out[prev.index] = { ...out[prev.index]!, message: `Expected ${prev.expected.join(" | ")}, actual ${prev.actual}` }
      continue
    }
    if (m && !prev) merged.set(key, { index: out.length, expected: [m[1]!], actual: m[2]! })
    out.push(i)
  }
  return out
}

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false })
/** The text of a file, or undefined when it is not UTF-8 (a leading BOM is dropped). */
const decodeUtf8 = (bytes: Uint8Array): string | undefined => {
  try {
    return utf8.decode(bytes)
  } catch {
    return undefined
  }
}

/**
 * The real path of a host path a spec names, or why it is refused: missing,
 * or (symlinks resolved) a system directory, an engine socket, bottle's own
 * state or a place credentials live.
 */
const checkedHostPath = (target: string, host: HostContext) =>
  realPathOf(target).pipe(
    Effect.map((real): string | { readonly message: string } => {
      const why = hostPathProblem(real, host)
      return why === undefined ? real : { message: `${target}${real !== target ? ` (${real})` : ""} ${why}` }
    }),
    Effect.catchAll((e) => Effect.succeed({ message: `${e.path} ${e.detail}` }))
  )

/** A message quotes the value it refused: a huge one is cut, so the error stays readable. */
const MAX_MESSAGE = 300
const shorten = (m: string) => {
  // A schema's wording for its own plumbing reads as noise to a person: say what was expected.
  const plain = m.replace(/Struct \(Encoded side\)/g, "a mapping").replace(/\(Encoded side\)/g, "")
  return plain.length > MAX_MESSAGE ? `${plain.slice(0, MAX_MESSAGE)}… (${plain.length - MAX_MESSAGE} more characters)` : plain
}

/** Decodes one parsed document; pure. */
export const decodeDocument = (
  file: string,
  doc: ParsedDocument
): Either.Either<BottleDocument, ReadonlyArray<SpecProblem>> => {
  const result = decode(doc.value)
  if (Either.isRight(result)) return Either.right(result.right)
  const all = ParseResult.ArrayFormatter.formatErrorSync(result.left)
  // An optional field's "or absent" alternative adds "Expected undefined, actual …" beside the real
  // complaint about its value (or about a key inside it): that line only restates that it is present.
  const real = all.filter((i) => !/^Expected undefined, actual /.test(i.message))
  const issues = mergeAlternatives(real.length > 0 ? real : all)
  return Either.left(
    issues.map((issue) => {
      const pos = nearest(doc.positions, issue.path) ?? doc.position
      return { file, ...pos, field: pathText(issue.path), message: shorten(issue.message) }
    })
  )
}

/** The YAML and TOML parsers, loaded when a spec is read (commands without one start faster). */
const parsers = Effect.promise(() => import("./parseDocuments.js"))

/** The most prompt text bottle reads from a promptFile. */
export const MAX_PROMPT_BYTES = 1024 * 1024

/** What loading needs to know of the host: where paths may not lead, and what a bottle can have. */
export interface LoadContext extends HostContext {
  /** The host's memory and CPUs, when the engine runs here: a bottle cannot have more. */
  readonly memoryBytes: number | undefined
  readonly cpus: number | undefined
  /** Where `env:` secrets are read from. */
  readonly env: NodeJS.ProcessEnv
  /** The install's key for hashing secret values (made on first use). */
  readonly secretKey: () => Buffer
  /** Names built images are tagged with. */
  readonly prefix: string
  /** Host-wide sidecar images (BOTTLE_GIT_IMAGE, BOTTLE_SUPERVISE_IMAGE), used instead of bottle's recipes. */
  readonly sidecarImages?: { readonly git?: string | undefined; readonly supervise?: string | undefined }
  /** Where bottle's own image recipes are (images/ beside the bundle): the sidecars' images are built from them. */
  readonly recipes?: string | undefined
  /** The supervisor's bundled server (dist/sidecars/supervise.cjs). */
  readonly superviseServer?: string | undefined
}

/** The sidecar images bottle builds from its own recipes, by recipe directory. */
export const SIDECAR_RECIPES = { git: "git-gate", supervise: "supervise" } as const

export const loadSpecs = (inputs: ReadonlyArray<string>, set: string, host: LoadContext) =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const problems: Array<SpecProblem> = []
    const problem = (file: string, message: string, line = 1, column = 1, field = "") =>
      problems.push({ file, line, column, field, message })

    const files: Array<string> = []
    for (const input of inputs) {
      const info = yield* Effect.either(fs.stat(input))
      if (Either.isLeft(info)) { problem(input, "no such file or directory", 0, 0); continue }
      if (info.right.type === "Directory") {
        const listed = yield* Effect.either(fs.readDirectory(input))
        if (Either.isLeft(listed)) { problem(input, `cannot read directory: ${listed.left.message}`, 0, 0); continue }
        const entries = listed.right.filter((e) => SPEC_EXTENSIONS.test(e)).sort()
        if (entries.length === 0) problem(input, "directory holds no .yaml, .yml or .toml spec files", 0, 0)
        files.push(...entries.map((e) => path.join(input, e)))
      } else files.push(input)
    }

    const bottles: Array<DesiredBottle> = []
    const seen = new Map<string, { file: string; line: number }>()
    /** A sidecar's image from bottle's own recipe: read (and hashed) once per run, whichever bottles use it. */
    const recipeRead = new Map<string, Either.Either<{ image: string; build: DesiredBuild }, string>>()
    const fromRecipe = (sidecar: keyof typeof SIDECAR_RECIPES) =>
      Effect.gen(function* () {
        const known = recipeRead.get(sidecar)
        if (known !== undefined) return known
        let result: Either.Either<{ image: string; build: DesiredBuild }, string>
        if (host.recipes === undefined) result = Either.left("bottle's image recipes are not installed beside it")
        else {
          const context = path.join(host.recipes, SIDECAR_RECIPES[sidecar])
          const read = yield* Effect.tryPromise(async () => (await import("./buildContext.js")).readContext(context, "Dockerfile", {})).pipe(Effect.either)
          result = Either.isLeft(read)
            ? Either.left(`bottle's recipe ${context} ${read.left.error instanceof Error ? read.left.error.message : String(read.left.error)}`)
            : Either.right({ image: sidecarImageTag(host.prefix, SIDECAR_RECIPES[sidecar], read.right.hash), build: { context, dockerfile: "Dockerfile", args: {}, hash: read.right.hash } })
        }
        recipeRead.set(sidecar, result)
        return result
      })
    /** The image a sidecar runs: the spec's, the host's, or bottle's recipe built. */
    const sidecarImage = (sidecar: keyof typeof SIDECAR_RECIPES, override: string | undefined, where: () => void) =>
      Effect.gen(function* () {
        const given = override ?? host.sidecarImages?.[sidecar]
        if (given !== undefined) return { image: given, build: undefined }
        const r = yield* fromRecipe(sidecar)
        if (Either.isLeft(r)) { where(); return { image: "", build: undefined } }
        return r.right
      })
    for (const file of files) {
      // A regular file, read up to the limit whatever stat says: never a device, a FIFO or a socket.
      const read = yield* Effect.either(readBoundedFile(file, MAX_SPEC_BYTES))
      if (Either.isLeft(read)) { problem(file, `cannot read: ${read.left.detail}`, 0, 0); continue }
      const text = decodeUtf8(read.right)
      if (text === undefined) { problem(file, "is not UTF-8 text", 0, 0); continue }
      const parsed = (yield* parsers).parseSpecText(file, text)
      if (parsed._tag === "Err") { problems.push(...parsed.problems); continue }
      if (parsed.documents.length === 0) problem(file, "holds no bottle documents")
      const dir = path.dirname(path.resolve(file))
      /** A host path as a spec writes it: relative to the spec file, `~/` from your home. */
      const fromSpec = (p: string) => (p === "~" || p.startsWith("~/") ? path.join(host.home, p.slice(1)) : path.resolve(dir, p))
      for (const doc of parsed.documents) {
        const decoded = decodeDocument(file, doc)
        if (Either.isLeft(decoded)) { problems.push(...decoded.left); continue }
        const b = decoded.right
        const at = (field: ReadonlyArray<PropertyKey>) => nearest(doc.positions, field) ?? doc.position
        const name = b.metadata.name
        const namePos = at(["metadata", "name"])
        const previous = seen.get(name)
        if (previous) {
          problem(file, `duplicate bottle name '${name}' (first defined at ${previous.file}:${previous.line})`, namePos.line, namePos.column, "metadata.name")
          continue
        }
        seen.set(name, { file, line: namePos.line })

        for (const field of ["namespace", "runtimeClassName"] as const) {
          if (b.spec[field] !== undefined && b.spec.backend !== "kubernetes") {
            const p = at(["spec", field])
            problem(file, "only the kubernetes backend has this field", p.line, p.column, `spec.${field}`)
          }
        }
        if (b.spec.backend === "kubernetes") {
          // Its proxy's Service is named after it, and a Service's name must start with a letter (DNS-1035).
          if (!/^[a-z]/.test(name)) problem(file, "on the kubernetes backend a bottle's name starts with a letter (its proxy's Service is named after it)", namePos.line, namePos.column, "metadata.name")
          const onCluster: ReadonlyArray<readonly [string, boolean, string]> = [
            ["workspace", b.spec.workspace !== undefined, "a host directory cannot be mounted into a cluster's pod (the workspace is a PersistentVolumeClaim)"],
            ["build", b.spec.build !== undefined, "bottle builds images on a Docker Engine only; name an image the cluster can pull with image:"],
            ["git", b.spec.git !== undefined, "the git gate runs on the docker backend only (for now)"],
            ["supervise", b.spec.supervise === true, "the supervisor runs on the docker backend only (for now)"],
            ["skills", (b.spec.skills?.length ?? 0) > 0, "skills are not carried to a cluster yet"],
            ["user", b.spec.user !== undefined && !/^[0-9]+(:[0-9]+)?$/.test(b.spec.user), "a pod runs as a numeric uid[:gid] (runAsUser)"]
          ]
          for (const [field, bad, why] of onCluster) {
            if (!bad) continue
            const p = at(["spec", field])
            problem(file, `not supported by the kubernetes backend: ${why}`, p.line, p.column, `spec.${field}`)
          }
          for (const [secretName, sec] of Object.entries(b.spec.secrets ?? {})) {
            if (sec.inject === undefined) continue
            const p = at(["spec", "secrets", secretName, "inject"])
            problem(file, "not supported by the kubernetes backend yet: the proxy's CA for injection is made on the docker backend only; give the secret to the agent (no inject)", p.line, p.column, `spec.secrets.${secretName}.inject`)
          }
        }
        if (b.spec.backend === "smolmachines" && b.spec.command !== undefined) {
          const p = at(["spec", "command"])
          problem(file, "not supported by the smolmachines backend: smolvm runs the image's own entrypoint", p.line, p.column, "spec.command")
        }
        let prompt = b.spec.prompt
        if (b.spec.prompt !== undefined && b.spec.promptFile !== undefined) {
          const p = at(["spec", "promptFile"])
          problem(file, "give prompt or promptFile, not both", p.line, p.column, "spec.promptFile")
        } else if (b.spec.promptFile !== undefined) {
          const p = at(["spec", "promptFile"])
          const checked = yield* checkedHostPath(fromSpec(b.spec.promptFile), host)
          if (typeof checked !== "string") problem(file, `prompt file ${checked.message}`, p.line, p.column, "spec.promptFile")
          else {
            const read = yield* Effect.either(readBoundedFile(checked, MAX_PROMPT_BYTES))
            const text = Either.isRight(read) ? decodeUtf8(read.right) : undefined
            if (Either.isLeft(read)) problem(file, `prompt file ${read.left.path} ${read.left.detail}`, p.line, p.column, "spec.promptFile")
            else if (text === undefined) problem(file, `prompt file ${checked} is not UTF-8 text`, p.line, p.column, "spec.promptFile")
            else prompt = text
          }
        }
        const skills: Array<CopiedTree> = []
        for (const [i, s] of (b.spec.skills ?? []).entries()) {
          const p = at(["spec", "skills", i])
          const checked = yield* checkedHostPath(fromSpec(s), host)
          if (typeof checked !== "string") { problem(file, `skill ${checked.message}`, p.line, p.column, `spec.skills[${i}]`); continue }
          const tree = yield* Effect.either(readTree(checked))
          if (Either.isLeft(tree)) problem(file, `skill ${tree.left.path} ${tree.left.detail}`, p.line, p.column, `spec.skills[${i}]`)
          else skills.push(tree.right)
        }
        const r = b.spec.resources
        const memoryBytes = r?.memory !== undefined ? parseMemory(r.memory) : DEFAULT_MEMORY_BYTES
        if (r?.memory !== undefined && host.memoryBytes !== undefined && memoryBytes > host.memoryBytes) {
          const p = at(["spec", "resources", "memory"])
          problem(file, `${r.memory} is more than this host has (${formatBytes(host.memoryBytes)})`, p.line, p.column, "spec.resources.memory")
        }
        if (r?.cpus !== undefined && host.cpus !== undefined && r.cpus > host.cpus) {
          const p = at(["spec", "resources", "cpus"])
          problem(file, `${r.cpus} is more CPUs than this host has (${host.cpus})`, p.line, p.column, "spec.resources.cpus")
        }
        const allow = b.spec.egress?.allow ?? []
        if (b.spec.egress?.proxy === "pipelock") {
          const ported = allow.findIndex((e) => /:[0-9]+$/.test(e))
          if (ported >= 0) {
            const p = at(["spec", "egress", "allow", ported])
            problem(file, "pipelock cannot limit an allowed host to a port: use the default proxy (mitmproxy), or drop the port", p.line, p.column, `spec.egress.allow[${ported}]`)
          }
        }
        // The image: given, or built by bottle from a context (tagged by what the build sees).
        let image = b.spec.image
        let build: DesiredBuild | undefined
        if ((b.spec.image === undefined) === (b.spec.build === undefined)) {
          const p = at(["spec", b.spec.image !== undefined ? "build" : "image"])
          problem(file, b.spec.image !== undefined ? "give image or build, not both" : "give image, or build to have bottle build it", p.line, p.column, b.spec.image !== undefined ? "spec.build" : "spec")
        } else if (b.spec.build !== undefined) {
          const p = at(["spec", "build", "context"])
          if (b.spec.backend === "smolmachines") problem(file, "not supported by the smolmachines backend: smolvm pulls its image from a registry, not from the local Engine", p.line, p.column, "spec.build")
          const context = yield* checkedHostPath(fromSpec(b.spec.build.context), host)
          if (typeof context !== "string") problem(file, `build context ${context.message}`, p.line, p.column, "spec.build.context")
          else {
            const dockerfile = b.spec.build.dockerfile ?? "Dockerfile"
            const args = { ...b.spec.build.args }
            const read = yield* Effect.tryPromise(async () => (await import("./buildContext.js")).readContext(context, dockerfile, args)).pipe(Effect.either)
            if (Either.isLeft(read)) problem(file, `build context ${context} ${read.left.error instanceof Error ? read.left.error.message : String(read.left.error)}`, p.line, p.column, "spec.build.context")
            else {
              build = { context, dockerfile, args, hash: read.right.hash }
              image = builtImageTag(host.prefix, name, read.right.hash)
            }
          }
        }
        // The user's own directory, mounted read-write where the agent works.
        let workspace: string | undefined
        if (b.spec.workspace !== undefined) {
          const p = at(["spec", "workspace"])
          const checked = yield* checkedHostPath(fromSpec(b.spec.workspace), host)
          if (typeof checked !== "string") problem(file, `workspace ${checked.message}`, p.line, p.column, "spec.workspace")
          else {
            const info = yield* Effect.either(fs.stat(checked))
            if (Either.isRight(info) && info.right.type !== "Directory") problem(file, `workspace ${checked} is not a directory`, p.line, p.column, "spec.workspace")
            else workspace = checked
          }
        }
        // Extra CAs the proxy trusts upstream.
        const egressTrust: Array<string> = []
        for (const [i, t] of (b.spec.egress?.trust ?? []).entries()) {
          const p = at(["spec", "egress", "trust", i])
          const read = yield* Effect.either(readBoundedFile(fromSpec(t), MAX_PROMPT_BYTES))
          const text = Either.isRight(read) ? read.right.toString("utf8") : ""
          if (Either.isLeft(read)) problem(file, `CA file ${read.left.path} ${read.left.detail}`, p.line, p.column, `spec.egress.trust[${i}]`)
          else if (!text.includes("-----BEGIN CERTIFICATE-----")) problem(file, `${fromSpec(t)} holds no PEM certificate`, p.line, p.column, `spec.egress.trust[${i}]`)
          else egressTrust.push(text)
        }
        // The git gate: each remote over SSH, its host's key pinned, its key a secret only the gate gets.
        let git: DesiredGit | undefined
        const gateSecrets = new Set<string>()
        if (b.spec.git !== undefined) {
          const g = b.spec.git
          const gp = at(["spec", "git"])
          if (b.spec.backend === "smolmachines") problem(file, "the git gate runs on the docker backend only (for now)", gp.line, gp.column, "spec.git")
          const pinned = new Set<string>()
          g.hostKeys.forEach((k) => { const r = parseHostKey(k); if (typeof r !== "string") r.names.forEach((n) => pinned.add(n)) })
          const names = new Set<string>()
          const remotes: Array<DesiredGit["remotes"][number]> = []
          for (const [i, r] of g.remotes.entries()) {
            const p = at(["spec", "git", "remotes", i])
            if (names.has(r.name)) problem(file, `remote '${r.name}' is declared twice`, p.line, p.column, `spec.git.remotes[${i}].name`)
            names.add(r.name)
            const url = parseGitRemoteUrl(r.url)
            if (typeof url === "string") continue
            if (!pinned.has(url.knownHostsName)) {
              const pu = at(["spec", "git", "remotes", i, "url"])
              problem(file, `no key for ${url.knownHostsName} in git.hostKeys: the gate trusts only pinned host keys`, pu.line, pu.column, `spec.git.remotes[${i}].url`)
            }
            if (r.sshKey !== undefined) {
              const pk = at(["spec", "git", "remotes", i, "sshKey"])
              const sec = b.spec.secrets?.[r.sshKey]
              if (sec === undefined) problem(file, `names no secret: add ${r.sshKey} under secrets`, pk.line, pk.column, `spec.git.remotes[${i}].sshKey`)
              else if (sec.inject !== undefined) problem(file, `${r.sshKey} is injected by the proxy: a key for the gate cannot also go into requests`, pk.line, pk.column, `spec.git.remotes[${i}].sshKey`)
              else gateSecrets.add(r.sshKey)
            }
            remotes.push({ name: r.name, url: r.url, push: r.push ?? false, sshKey: r.sshKey, spellings: url.spellings })
          }
          const img = yield* sidecarImage("git", b.spec.sidecars?.git?.image, () => problem(file, "cannot build the git gate's image: set sidecars.git.image or BOTTLE_GIT_IMAGE", gp.line, gp.column, "spec.git"))
          git = { remotes, hostKeys: g.hostKeys.flatMap((k) => { const r = parseHostKey(k); return typeof r === "string" ? [] : [r.line] }), image: img.image, build: img.build }
        }
        let supervise: DesiredSupervise | undefined
        if (b.spec.supervise === true) {
          const sp = at(["spec", "supervise"])
          if (b.spec.backend === "smolmachines") problem(file, "the supervisor runs on the docker backend only (for now)", sp.line, sp.column, "spec.supervise")
          const img = yield* sidecarImage("supervise", b.spec.sidecars?.supervise?.image, () => problem(file, "cannot build the supervisor's image: set sidecars.supervise.image or BOTTLE_SUPERVISE_IMAGE", sp.line, sp.column, "spec.supervise"))
          const server = host.superviseServer === undefined ? undefined : yield* Effect.either(readBoundedFile(host.superviseServer, 16 * 1024 * 1024))
          if (server === undefined || Either.isLeft(server)) problem(file, `the supervisor's server is not installed beside bottle${host.superviseServer !== undefined ? ` (${host.superviseServer})` : ""}: run npm run build`, sp.line, sp.column, "spec.supervise")
          else supervise = { ...img, server: server.right.toString("utf8") }
        }
        // Secrets: read now; one that cannot be had refuses its bottle (naming it, never a value), not the whole spec.
        const secrets: Array<DesiredSecret> = []
        const secretProblems: Array<string> = []
        const rules = allow.flatMap((e) => { const x = parseAllowEntry(e); return typeof x === "string" ? [] : [x] })
        for (const [secretName, sec] of Object.entries(b.spec.secrets ?? {})) {
          const p = at(["spec", "secrets", secretName])
          if (sec.inject !== undefined) {
            if (b.spec.egress?.proxy === "pipelock") { problem(file, "pipelock cannot put a secret into requests: use the default proxy (mitmproxy)", p.line, p.column, `spec.secrets.${secretName}.inject`); continue }
            if (allowedBy(rules, sec.inject.host, 443) === undefined) { problem(file, `${sec.inject.host} is not in egress.allow (port 443): the agent could not reach it`, p.line, p.column, `spec.secrets.${secretName}.inject.host`); continue }
          }
          if (b.spec.env?.[secretName] !== undefined) { problem(file, `${secretName} is also set in env`, p.line, p.column, `spec.secrets.${secretName}`); continue }
          const value = yield* readSecret(sec.from, file, host.env)
          if (Either.isLeft(value)) { secretProblems.push(`secret ${secretName}: ${value.left}`); continue }
          secrets.push({
            name: secretName,
            value: value.right,
            digest: digestOf(host.secretKey(), value.right),
            inject: sec.inject !== undefined ? { host: normaliseHost(sec.inject.host), header: sec.inject.header, format: sec.inject.format ?? "{value}" } : undefined,
            ...(gateSecrets.has(secretName) ? { gate: true as const } : {})
          })
        }
        bottles.push({
          name,
          set,
          backend: b.spec.backend,
          image: image ?? "",
          command: b.spec.command,
          workdir: b.spec.workdir,
          env: { ...b.spec.env },
          prompt,
          skills,
          egressAllow: allow,
          egressProxy: b.spec.egress?.proxy ?? "mitmproxy",
          egressTrust,
          resources: {
            cpus: r?.cpus,
            memoryBytes,
            pids: r?.pids ?? DEFAULT_PIDS
          },
          preserve: b.spec.preserve ?? false,
          egressImage: b.spec.sidecars?.egress?.image,
          workspace,
          user: b.spec.user,
          secrets,
          secretProblems,
          build,
          git,
          supervise,
          ...(b.spec.backend === "kubernetes" ? { kubernetes: { namespace: b.spec.namespace ?? `bottle-${set}`, runtimeClassName: b.spec.runtimeClassName } } : {}),
          source: { file, line: doc.position.line }
        })
      }
    }
    if (problems.length > 0) return yield* Effect.fail(new SpecError({ problems }))
    return bottles.sort((a, b) => byText(a.name, b.name))
  })
