/**
 * Parses spec text (YAML or TOML) into plain values with a source position for
 * every field path, refusing what YAML would silently reinterpret. Pure.
 */
import { parse as parseToml, TomlError } from "smol-toml"
import { isAlias, isMap, isPair, isScalar, isSeq, LineCounter, parseAllDocuments, Scalar, type Node as YamlNode } from "yaml"
import type { SpecProblem } from "./specError.js"
import { nearest, pathKey, pathText, short, type ParsedDocument, type ParseResult, type Position } from "./specPositions.js"

export type { ParsedDocument, ParseResult, Position }

/** Nodes one document may expand to (aliases included): stops alias bombs. */
const MAX_NODES = 10_000
/** Nesting a bottle spec never needs; deeper input is refused before it can exhaust the stack. */
export const MAX_DEPTH = 32
/** The YAML 1.2 core schema's tags: anything else (`!!python/object`, `!custom`) is refused. */
const CORE_TAGS = new Set(["str", "int", "float", "bool", "null", "map", "seq"].map((t) => `tag:yaml.org,2002:${t}`))
const FORBIDDEN_KEYS = new Set(["__proto__", "constructor", "prototype"])
/** Plain scalars that YAML 1.1 reads as booleans but YAML 1.2 as strings. */
const YAML11_BOOL = /^(y|Y|yes|Yes|YES|n|N|no|No|NO|on|On|ON|off|Off|OFF)$/
/** Plain scalars whose number value depends on the YAML version (octal, sexagesimal, underscores). */
const AMBIGUOUS_NUMBER = /^([-+]?0[0-9_]+|[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+(\.[0-9_]*)?|[-+]?[0-9]+_[0-9_]*(\.[0-9_]*)?|0o[0-7]+|0x[0-9a-fA-F]+)$/

export const parseSpecText = (file: string, text: string): ParseResult =>
  /\.toml$/i.test(file) ? parseTomlText(file, text) : parseYamlText(file, text)

const parseYamlText = (file: string, text: string): ParseResult => {
  const lineCounter = new LineCounter()
  const problems: Array<SpecProblem> = []
  const at = (offset: number | undefined): Position => {
    const p = lineCounter.linePos(offset ?? 0)
    return { line: p.line, column: p.col }
  }
  let docs: ReturnType<typeof parseAllDocuments>
  try {
    docs = parseAllDocuments(text, {
      lineCounter,
      merge: false,
      // Checked below as each mapping is read: the parser's own check is quadratic in the number of keys.
      uniqueKeys: false,
      strict: true,
      prettyErrors: false,
      version: "1.2"
    })
  } catch (e) {
    if (!(e instanceof RangeError)) throw e
    return { _tag: "Err", problems: [{ file, line: 1, column: 1, field: "", message: `YAML: nested too deeply to read (at most ${MAX_DEPTH} levels)` }] }
  }
  const list = Array.isArray(docs) ? docs : [docs]
  const documents: Array<ParsedDocument> = []
  for (const doc of list) {
    // Unresolved tags are reported below with their field path.
    const issues = [...doc.errors, ...doc.warnings.filter((w) => w.code !== "TAG_RESOLVE_FAILED")]
    // The parser ran out of stack (nesting deeper than any spec needs): one problem, not a cascade of them.
    const exhausted = issues.find((e) => /Maximum call stack/i.test(e.message))
    if (exhausted !== undefined) {
      return { _tag: "Err", problems: [{ file, ...at(exhausted.pos[0]), field: "", message: `YAML: nested too deeply to read (at most ${MAX_DEPTH} levels)` }] }
    }
    for (const e of issues) {
      const pos = at(e.pos[0])
      problems.push({ file, ...pos, field: "", message: `YAML: ${firstLine(e.message)}` })
    }
    if (issues.length > 0) continue
    // An empty document (between or after `---` markers) holds no bottle.
    if (doc.contents === null || (isScalar(doc.contents) && doc.contents.value === null && doc.contents.tag === undefined)) continue
    const positions = new Map<string, Position>()
    let nodes = 0
    /** The nodes being expanded on the way down: an alias to one of them is a cycle. */
    const expanding = new Set<unknown>()
    const toValue = (node: unknown, path: Array<PropertyKey>): unknown => {
      if (++nodes > MAX_NODES) throw new Refusal(path, `document holds more than ${MAX_NODES} values (far more than a bottle needs; an alias bomb?)`)
      if (path.length > MAX_DEPTH) throw new Refusal(path.slice(0, MAX_DEPTH), `nested more than ${MAX_DEPTH} levels deep`)
      if (isAlias(node)) {
        const target = node.resolve(doc)
        if (target === undefined) throw new Refusal(path, `unknown alias *${node.source}`)
        if (expanding.has(target)) throw new Refusal(path, `alias *${node.source} refers to a node that contains it (a recursive alias)`)
        return toValue(target, path)
      }
      const n = node as YamlNode
      // A field's position is its key's, when it has one: that is where an editor should point.
      if (n.range && !positions.has(pathKey(path))) positions.set(pathKey(path), at(n.range[0]))
      if (n.tag !== undefined && !CORE_TAGS.has(n.tag)) {
        throw new Refusal(path, `YAML tag ${n.tag.replace(/^tag:yaml\.org,2002:/, "!!")} is not allowed (only plain values, lists and mappings)`)
      }
      if (!isMap(node) && !isSeq(node)) return convert(node, path)
      expanding.add(node)
      try {
        return convert(node, path)
      } finally {
        expanding.delete(node)
      }
    }
    const convert = (node: unknown, path: Array<PropertyKey>): unknown => {
      if (isMap(node)) {
        const out: Record<string, unknown> = {}
        for (const pair of node.items) {
          if (!isPair(pair)) continue
          const keyNode = pair.key
          const key = isScalar(keyNode) ? keyNode.value : undefined
          if (typeof key !== "string") {
            throw new Refusal(path, `keys must be plain strings, found ${isScalar(keyNode) ? JSON.stringify(keyNode.value) : "a complex key"}`)
          }
          const keyPath = [...path, key]
          if (isScalar(keyNode) && keyNode.range) positions.set(pathKey(keyPath), at(keyNode.range[0]))
          if (key === "<<") throw new Refusal(keyPath, "YAML merge keys (<<) are not allowed; write the fields out")
          if (FORBIDDEN_KEYS.has(key)) throw new Refusal(keyPath, `'${key}' is not allowed as a key`)
          if (Object.prototype.hasOwnProperty.call(out, key)) throw new Refusal(keyPath, `duplicate key '${short(key)}'`)
          Object.defineProperty(out, key, { value: toValue(pair.value, keyPath), enumerable: true, writable: true, configurable: true })
        }
        return out
      }
      if (isSeq(node)) return node.items.map((item, i) => toValue(item, [...path, i]))
      if (isScalar(node)) {
        if (node.type === Scalar.PLAIN && typeof node.source === "string") {
          if (YAML11_BOOL.test(node.source)) {
            throw new Refusal(path, `'${node.source}' is ambiguous (YAML 1.1 reads it as a boolean): quote it for a string, or write true/false`)
          }
          if (AMBIGUOUS_NUMBER.test(node.source)) {
            throw new Refusal(path, `'${node.source}' is ambiguous (YAML versions read it as different numbers): quote it`)
          }
        }
        return node.value
      }
      if (node === null || node === undefined) return null
      throw new Refusal(path, "unsupported YAML node")
    }
    try {
      const value = toValue(doc.contents, [])
      documents.push({ value, position: at(doc.contents.range?.[0]), positions })
    } catch (e) {
      if (!(e instanceof Refusal)) throw e
      const pos = positions.get(pathKey(e.path)) ?? nearest(positions, e.path) ?? at(doc.contents.range?.[0])
      problems.push({ file, ...pos, field: pathText(e.path), message: e.message })
    }
  }
  return problems.length > 0 ? { _tag: "Err", problems } : { _tag: "Ok", documents }
}

const parseTomlText = (file: string, text: string): ParseResult => {
  let value: unknown
  try {
    value = parseToml(text, { maxDepth: MAX_DEPTH })
  } catch (e) {
    if (e instanceof TomlError) {
      return { _tag: "Err", problems: [{ file, line: e.line, column: e.column, field: "", message: `TOML: ${firstLine(e.message)}` }] }
    }
    if (e instanceof RangeError) return { _tag: "Err", problems: [{ file, line: 1, column: 1, field: "", message: `TOML: nested too deeply to read (at most ${MAX_DEPTH} levels)` }] }
    throw e
  }
  // smol-toml keeps no positions: find each key's line by its table header and key, as a person reading the file would.
  const lines = tomlKeyLines(text)
  const positions = new Map<string, Position>()
  const walk = (v: unknown, path: Array<PropertyKey>): void => {
    if (path.length > MAX_DEPTH) throw new Refusal(path.slice(0, MAX_DEPTH), `nested more than ${MAX_DEPTH} levels deep`)
    if (path.length > 0) {
      const pos = lines.get(path.filter((p) => typeof p === "string").join("\u0000"))
      if (pos) positions.set(pathKey(path), pos)
    }
    if (Array.isArray(v)) v.forEach((x, i) => walk(x, [...path, i]))
    else if (v !== null && typeof v === "object" && !(v instanceof Date)) {
      for (const [k, x] of Object.entries(v)) {
        if (FORBIDDEN_KEYS.has(k)) throw new Refusal([...path, k], `'${k}' is not allowed as a key`)
        walk(x, [...path, k])
      }
    }
  }
  try {
    walk(value, [])
  } catch (e) {
    if (!(e instanceof Refusal)) throw e
    const pos = nearest(positions, e.path) ?? lines.get(e.path.filter((p) => typeof p === "string").join("\u0000")) ?? { line: 1, column: 1 }
    return { _tag: "Err", problems: [{ file, ...pos, field: pathText(e.path), message: e.message }] }
  }
  return { _tag: "Ok", documents: [{ value, position: { line: 1, column: 1 }, positions }] }
}

/** A TOML key (`a.b."c.d"`) as its parts, quotes removed. */
const splitTomlKey = (key: string): Array<string> => {
  const parts: Array<string> = []
  let cur = ""
  let quote: string | undefined
  for (const c of key) {
    if (quote !== undefined) { if (c === quote) quote = undefined; else cur += c; continue }
    if (c === '"' || c === "'") { quote = c; continue }
    if (c === ".") { parts.push(cur.trim()); cur = ""; continue }
    cur += c
  }
  parts.push(cur.trim())
  return parts
}

/**
 * Where each key path of a TOML text is written (paths joined by NUL, array
 * indices left out), in one pass: table headers, `key = …` and dotted keys,
 * and the keys of an inline table on the same line. Paths deeper than any
 * spec needs are not recorded (the walk refuses them).
 */
const tomlKeyLines = (text: string): ReadonlyMap<string, Position> => {
  const map = new Map<string, Position>()
  const record = (keys: ReadonlyArray<string>, pos: Position) => {
    for (let n = 1; n <= Math.min(keys.length, MAX_DEPTH + 1); n++) {
      const k = keys.slice(0, n).join("\u0000")
      if (!map.has(k)) map.set(k, pos)
    }
  }
  let table: Array<string> = []
  text.split("\n").forEach((line, i) => {
    const header = /^\s*\[\[?\s*([^\]]+?)\s*\]\]?/.exec(line)
    if (header) {
      table = splitTomlKey(header[1]!)
      record(table, { line: i + 1, column: line.indexOf("[") + 1 })
      return
    }
    const key = /^\s*([A-Za-z0-9_\-"'. ]+?)\s*=/.exec(line)
    if (!key) return
    const keys = [...table, ...splitTomlKey(key[1]!)]
    record(keys, { line: i + 1, column: line.search(/\S/) + 1 })
    for (const m of line.slice(key[0].length).matchAll(/[{,]\s*([A-Za-z0-9_\-]+|"[^"]*"|'[^']*')\s*=/g)) {
      record([...keys, ...splitTomlKey(m[1]!)], { line: i + 1, column: key[0].length + (m.index ?? 0) + 2 })
    }
  })
  return map
}

const firstLine = (s: string) => s.split("\n")[0]!.trim()

class Refusal {
  constructor(readonly path: ReadonlyArray<PropertyKey>, readonly message: string) {}
}

/**
 * `text` (a YAML spec file) with `entry` added to the egress.allow of the
 * bottle named `bottle`, comments and layout kept (the yaml library's
 * document model): how an approved egress request becomes a change to the
 * spec, the one source of truth.
 */
export const addAllowEntry = (text: string, bottle: string, entry: string):
  | { readonly _tag: "Changed"; readonly text: string }
  | { readonly _tag: "Already" }
  | { readonly _tag: "Err"; readonly message: string } => {
  const docs = parseAllDocuments(text, { version: "1.2", uniqueKeys: false, keepSourceTokens: false })
  const list = Array.isArray(docs) ? docs : [docs]
  const broken = list.find((d) => d.errors.length > 0)
  if (broken !== undefined) return { _tag: "Err", message: `does not read as YAML: ${broken.errors[0]!.message.split("\n")[0]}` }
  const doc = list.find((d) => d.getIn(["metadata", "name"]) === bottle)
  if (doc === undefined) return { _tag: "Err", message: `holds no bottle named '${bottle}'` }
  const allow = doc.getIn(["spec", "egress", "allow"], true)
  const written = /^[a-z0-9.-]+$/.test(entry) ? entry : JSON.stringify(entry)
  if (isSeq(allow)) {
    if (allow.items.some((i) => isScalar(i) && String(i.value).toLowerCase() === entry)) return { _tag: "Already" }
    // The smallest edit: the entry written into the list where it is, every other byte kept.
    const last = allow.items[allow.items.length - 1]
    if (allow.flow === true && allow.range !== undefined && allow.range !== null) {
      const close = text.lastIndexOf("]", allow.range[1])
      if (close > allow.range[0]) {
        const before = text.slice(0, close)
        const pad = before.slice(before.replace(/\s*$/, "").length)
        return { _tag: "Changed", text: `${before.replace(/\s*$/, "")}${last !== undefined ? ", " : ""}${written}${pad}${text.slice(close)}` }
      }
    } else if (!allow.flow && last !== undefined && isScalar(last) && last.range) {
      const lineStart = text.lastIndexOf("\n", last.range[0]) + 1
      const dash = text.indexOf("-", lineStart)
      const lineEnd = text.indexOf("\n", last.range[1])
      const at = lineEnd === -1 ? text.length : lineEnd
      if (dash >= lineStart && dash < last.range[0]) {
        return { _tag: "Changed", text: `${text.slice(0, at)}\n${" ".repeat(dash - lineStart)}- ${written}${text.slice(at)}` }
      }
    }
    allow.items.push(doc.createNode(entry))
  } else if (allow === undefined || allow === null || (isScalar(allow) && allow.value === null)) {
    doc.setIn(["spec", "egress", "allow"], doc.createNode([entry], { flow: true }))
  } else {
    return { _tag: "Err", message: `spec.egress.allow of '${bottle}' is not a list` }
  }
  return { _tag: "Changed", text: list.map((d) => d.toString({ lineWidth: 0 })).join("") }
}
