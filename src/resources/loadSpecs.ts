/**
 * Loads spec files (`-f`, repeatable, files or directories) into desired
 * bottles. Every problem names file, line, column and field; any problem
 * fails the whole load, so nothing is changed on bad input.
 */
import { FileSystem, Path } from "@effect/platform"
import { Effect, Either, ParseResult, Schema } from "effect"
import { DEFAULT_MEMORY_BYTES, DEFAULT_PIDS, parseMemory, type DesiredBottle } from "./desired.js"
import { MAX_SPEC_BYTES, nearest, parseSpecText, pathText, type ParsedDocument } from "./parseDocuments.js"
import { BottleDocument } from "./spec.js"
import { SpecError, type SpecProblem } from "./specError.js"

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
      return { file, ...pos, field: pathText(issue.path), message: issue.message }
    })
  )
}

export const loadSpecs = (inputs: ReadonlyArray<string>, set: string) =>
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
    for (const file of files) {
      const info = yield* Effect.either(fs.stat(file))
      if (Either.isRight(info) && Number(info.right.size) > MAX_SPEC_BYTES) {
        problem(file, `file is ${info.right.size} bytes; spec files are limited to ${MAX_SPEC_BYTES}`, 0, 0)
        continue
      }
      const read = yield* Effect.either(fs.readFileString(file))
      if (Either.isLeft(read)) { problem(file, `cannot read: ${read.left.message}`, 0, 0); continue }
      const text = read.right
      const parsed = parseSpecText(file, text)
      if (parsed._tag === "Err") { problems.push(...parsed.problems); continue }
      if (parsed.documents.length === 0) problem(file, "holds no bottle documents")
      const dir = path.dirname(path.resolve(file))
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

        if (b.spec.backend === "smolmachines" && b.spec.command !== undefined) {
          const p = at(["spec", "command"])
          problem(file, "not supported by the smolmachines backend: smolvm runs the image's own entrypoint", p.line, p.column, "spec.command")
        }
        let prompt = b.spec.prompt
        if (b.spec.prompt !== undefined && b.spec.promptFile !== undefined) {
          const p = at(["spec", "promptFile"])
          problem(file, "give prompt or promptFile, not both", p.line, p.column, "spec.promptFile")
        } else if (b.spec.promptFile !== undefined) {
          const target = path.resolve(dir, b.spec.promptFile)
          const read = yield* Effect.either(fs.readFileString(target))
          const p = at(["spec", "promptFile"])
          if (Either.isLeft(read)) problem(file, `cannot read prompt file ${target}`, p.line, p.column, "spec.promptFile")
          else prompt = read.right
        }
        const skills: Array<string> = []
        for (const [i, s] of (b.spec.skills ?? []).entries()) {
          const target = path.resolve(dir, s)
          const exists = yield* fs.exists(target).pipe(Effect.orElseSucceed(() => false))
          const p = at(["spec", "skills", i])
          if (!exists) problem(file, `skill path ${target} does not exist`, p.line, p.column, `spec.skills[${i}]`)
          else skills.push(target)
        }
        const r = b.spec.resources
        bottles.push({
          name,
          set,
          backend: b.spec.backend,
          image: b.spec.image,
          command: b.spec.command,
          workdir: b.spec.workdir,
          env: { ...b.spec.env },
          prompt,
          skills,
          egressAllow: b.spec.egress?.allow ?? [],
          resources: {
            cpus: r?.cpus,
            memoryBytes: r?.memory !== undefined ? parseMemory(r.memory) : DEFAULT_MEMORY_BYTES,
            pids: r?.pids ?? DEFAULT_PIDS
          },
          preserve: b.spec.preserve ?? false,
          egressImage: b.spec.sidecars?.egress?.image,
          source: { file, line: doc.position.line }
        })
      }
    }
    if (problems.length > 0) return yield* Effect.fail(new SpecError({ problems }))
    return bottles.sort((a, b) => a.name.localeCompare(b.name))
  })
