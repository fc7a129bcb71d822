/**
 * Hostile spec files for the "no stack trace ever reaches a user" property:
 * valid seed specs, mutated deterministically (a seeded PRNG, so a failing
 * case is the same case on every run), plus inputs written by hand that are
 * known to break parsers (deep nesting, alias bombs, huge values, odd bytes,
 * things that are not files at all). Pure: the runner writes them to disk.
 */
import { stringify as toToml } from "smol-toml"
import { stringify as toYaml } from "yaml"

/** What is given to `-f`. Files are written next to a `skills/web-research` dir and a `prompt.md`. */
export type FuzzInput =
  | { readonly kind: "file"; readonly ext: string; readonly bytes: Buffer }
  /** A directory holding these entries. */
  | { readonly kind: "dir"; readonly entries: ReadonlyArray<DirEntry> }
  /** A FIFO nobody writes to. */
  | { readonly kind: "fifo"; readonly ext: string }
  /** A path outside the case's own files, given as is. */
  | { readonly kind: "path"; readonly path: string }

export type DirEntry =
  | { readonly name: string; readonly bytes: Buffer }
  | { readonly name: string; readonly fifo: true }
  | { readonly name: string; readonly dir: true }
  | { readonly name: string; readonly symlink: string }

export interface FuzzCase {
  readonly name: string
  readonly input: FuzzInput
  /** A seed: must be accepted (exit 0 or 1, and it reaches the engine), or the property proves nothing. */
  readonly valid?: boolean
}

// ---------------------------------------------------------------- PRNG

/** mulberry32: tiny, fast, and the same sequence everywhere. */
const prng = (seed: number) => {
  let a = seed >>> 0
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const int = (n: number) => Math.floor(next() * n)
  const pick = <T>(xs: ReadonlyArray<T>): T => xs[int(xs.length)]!
  return { next, int, pick }
}
type Rng = ReturnType<typeof prng>

// ---------------------------------------------------------------- trees

type Tree = unknown
type Path = ReadonlyArray<string | number>

const clone = <T>(t: T): T => structuredClone(t)

const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v) && !(v instanceof Date)

/** Every path in a tree, the root included. */
const pathsOf = (t: Tree, at: Path = []): Array<Path> => {
  const out: Array<Path> = [at]
  if (Array.isArray(t)) t.forEach((v, i) => out.push(...pathsOf(v, [...at, i])))
  else if (isObj(t)) for (const [k, v] of Object.entries(t)) out.push(...pathsOf(v, [...at, k]))
  return out
}

const getAt = (t: Tree, path: Path): unknown => path.reduce<unknown>((v, k) => (v as Record<string | number, unknown>)[k], t)

/** A copy with the value at `path` replaced (the root too). */
const setAt = (t: Tree, path: Path, value: unknown): Tree => {
  if (path.length === 0) return value
  const copy = clone(t)
  const parent = getAt(copy, path.slice(0, -1)) as Record<string | number, unknown>
  parent[path[path.length - 1]!] = value
  return copy
}

/** A copy with the key (or list item) at `path` gone; the root becomes an empty document. */
const deleteAt = (t: Tree, path: Path): Tree => {
  if (path.length === 0) return null
  const copy = clone(t)
  const parent = getAt(copy, path.slice(0, -1))
  const key = path[path.length - 1]!
  if (Array.isArray(parent)) parent.splice(key as number, 1)
  else delete (parent as Record<string, unknown>)[key as string]
  return copy
}

/** A copy with the key at `path` renamed, keeping its place among its siblings. */
const renameAt = (t: Tree, path: Path, to: string): Tree => {
  const key = path[path.length - 1]
  if (typeof key !== "string") return t
  const copy = clone(t)
  const parent = getAt(copy, path.slice(0, -1)) as Record<string, unknown>
  const entries = Object.entries(parent).map(([k, v]): [string, unknown] => [k === key ? to : k, v])
  for (const k of Object.keys(parent)) delete parent[k]
  for (const [k, v] of entries) parent[k] = v
  return copy
}

const stringPaths = (t: Tree) => pathsOf(t).filter((p) => typeof getAt(t, p) === "string")
const keyPaths = (t: Tree) => pathsOf(t).filter((p) => typeof p[p.length - 1] === "string")

// ---------------------------------------------------------------- seeds

const HEAD = { apiVersion: "bottle/v1", kind: "Bottle" }

/** Everything a bottle can say, with a skill dir and a prompt file that exist. */
const researcher = () => ({
  ...HEAD,
  metadata: { name: "researcher" },
  spec: {
    backend: "docker",
    image: "claude-bottle:latest",
    command: ["claude", "--verbose"],
    workdir: "/workspace",
    env: { LOG_LEVEL: "info", TOKEN_HINT: "none" },
    prompt: "You research and write notes.\nKeep them short.\n",
    skills: ["./skills/web-research"],
    egress: { allow: ["api.anthropic.com", "*.github.com"], proxy: "mitmproxy" },
    resources: { cpus: 1, memory: "512m", pids: 256 },
    preserve: false,
    sidecars: { egress: { image: "bottle-local/egress:latest" } }
  }
})

const reviewer = () => ({
  ...HEAD,
  metadata: { name: "reviewer" },
  spec: { image: "claude-bottle:latest", promptFile: "./prompt.md", egress: { allow: ["api.anthropic.com"] }, preserve: true }
})

const writer = () => ({
  ...HEAD,
  metadata: { name: "writer" },
  spec: {
    image: "claude-bottle:latest",
    prompt: "You write documentation.",
    skills: ["./skills/web-research"],
    env: { LOG_LEVEL: "info" },
    egress: { allow: ["api.anthropic.com", "*.npmjs.org:443"] },
    resources: { cpus: 0.5, memory: "256m", pids: 64 }
  }
})

const minimal = () => ({ ...HEAD, metadata: { name: "m" }, spec: { image: "busybox" } })

const yamlText = (docs: ReadonlyArray<Tree>) => docs.map((d) => toYaml(d, { lineWidth: 0 })).join("---\n")
const tomlText = (doc: Tree) => toToml(doc as Record<string, unknown>)
const utf8 = (s: string) => Buffer.from(s, "utf8")
const yamlFile = (docs: ReadonlyArray<Tree>): FuzzInput => ({ kind: "file", ext: "yaml", bytes: utf8(yamlText(docs)) })
const tomlFile = (doc: Tree): FuzzInput => ({ kind: "file", ext: "toml", bytes: utf8(tomlText(doc)) })
const raw = (text: string | Buffer, ext = "yaml"): FuzzInput => ({ kind: "file", ext, bytes: typeof text === "string" ? utf8(text) : text })

const MINIMAL_YAML = yamlText([minimal()])
const HEAD_YAML = "apiVersion: bottle/v1\nkind: Bottle\nmetadata:\n  name: m\n"
const MINIMAL_TOML = tomlText(writer())

// ---------------------------------------------------------------- value pools

/** Strings that mean something to some part of bottle, YAML, a shell or a path. */
const ODD_STRINGS = (): ReadonlyArray<string> => [
  "", " ", "-", "/", "..", "~", "*", "*.", "*.*", ":", "a:99999", "a:0", "[::1]:443", "1.2.3.4", "http://x.com/", "xn--", "bücher.de",
  "/dev/zero", "/proc/self/mem", "/etc/shadow", "../../../../../../../etc/passwd", "/var/run/docker.sock", "~/.ssh", "./prompt.md/..",
  "1e400", "NaN", "-0", "0x10", "1_000", "yes", "null", "true", "!!str", "&a", "*a", "%", "@", "`", "{", "[", "\"", "'", "#", "|", ">",
  "a\nb", "\t", "\r", "a\u0000b", "$(reboot)", "${HOME}", "%s%s%n", "sha256:" + "0".repeat(64), "a@sha256:" + "f".repeat(64), "a@sha256:zz",
  "UPPER:Case", "a".repeat(41), "x".repeat(513), "a:b:c", "a//b", "registry:5000/a/b:c", "-rf", "--help", "0", "4194305", "1025", "6m", "5m", "1024.5g", "99999999999999999999999g"
]

const ODD_NUMBERS: ReadonlyArray<number> = [0, -1, -0, 0.001, 0.0099, 1.5, 1e308, -1e308, 2 ** 53 + 1, 4_194_305, 1025, Infinity, -Infinity, NaN]

/** Text that renders oddly, compares oddly or normalises into something else. */
const ODD_UNICODE: ReadonlyArray<string> = [
  "\u200F", // RTL mark
  "\u202Eevil", // right-to-left override
  "\u2066a\u2069", // isolates
  "\u200D", // zero-width joiner
  "\u200B", // zero-width space
  "\uFEFF", // BOM in the middle
  "👩‍👩‍👧‍👦", // ZWJ sequence
  "🇺🇳",
  "e\u0301", // combining accent
  "cafe\u0301", // NFD
  "caf\u00e9", // NFC
  "\u2028", // line separator
  "\u2029", // paragraph separator
  "\u0085", // NEL
  "\u00A0", // no-break space
  "\u{E0001}", // language tag
  "\u{10FFFF}",
  "\uD800", // lone surrogate (escaped where the format allows it)
  "\uDFFF",
  "Z\u0338\u0321\u031Ba\u0337l\u0336g\u0335o\u0334",
  "ı", // dotless i
  "ſ", // long s: upper-cases to S
  "\u212A", // Kelvin sign: lower-cases to k
  "ｓｐｅｃ" // fullwidth
]

/** Keys that look like the real ones. */
const HOMOGLYPH_KEYS: Record<string, string> = {
  apiVersion: "\u0430piVersion", // Cyrillic a
  kind: "k\u0456nd", // Cyrillic i
  metadata: "metad\u0430ta",
  name: "n\u0430me",
  spec: "\u0455pec", // Cyrillic s
  image: "imag\u0435",
  env: "\u0435nv",
  egress: "egre\u0455\u0455",
  allow: "a\u04CFlow", // palochka
  resources: "resource\u0455",
  memory: "m\u0435mory",
  prompt: "prom\u0440t",
  skills: "skil\u04CFs"
}

const retypedValue = (type: string, rng: Rng): unknown => {
  switch (type) {
    case "string": return rng.pick(ODD_STRINGS())
    case "number": return rng.pick(ODD_NUMBERS)
    case "list": return rng.pick([[], ["a", 1], [[[]]], [{ a: "b" }]])
    case "map": return rng.pick([{}, { x: 1 }, { "": "" }, { a: { b: {} } }])
    case "null": return null
    case "bool": return rng.next() < 0.5
    case "datetime": return new Date(Date.UTC(1979, 4, 27, 7, 32))
    default: throw new Error(type)
  }
}

const YAML_TYPES = ["string", "number", "list", "map", "null", "bool"]
/** TOML has no null; it has datetimes instead. */
const TOML_TYPES = ["string", "number", "list", "map", "bool", "datetime"]

// ---------------------------------------------------------------- text-level mutations

const lines = (s: string) => s.split("\n")

/** Repeats one `key:` / `key =` line right after itself. */
const duplicateLine = (text: string, rng: Rng, toml: boolean): string => {
  const ls = lines(text)
  const candidates = ls.map((l, i) => [l, i] as const).filter(([l]) => (toml ? /^\s*(\[|[A-Za-z"])/.test(l) && l.includes("=") || /^\s*\[/.test(l) : /^\s*[A-Za-z_"]+:/.test(l)))
  if (candidates.length === 0) return text
  const [l, i] = rng.pick(candidates)
  ls.splice(i + 1, 0, l)
  return ls.join("\n")
}

const deleteLine = (text: string, rng: Rng): string => {
  const ls = lines(text)
  ls.splice(rng.int(ls.length), 1)
  return ls.join("\n")
}

const swapLines = (text: string, rng: Rng): string => {
  const ls = lines(text)
  const i = rng.int(ls.length), j = rng.int(ls.length)
  ;[ls[i], ls[j]] = [ls[j]!, ls[i]!]
  return ls.join("\n")
}

const insertAt = (text: string, at: number, what: string) => text.slice(0, at) + what + text.slice(at)

const spliceBytes = (b: Buffer, at: number, what: ReadonlyArray<number>) => Buffer.concat([b.subarray(0, at), Buffer.from(what), b.subarray(at)])

/** Byte sequences that are not UTF-8: a lone surrogate as WTF-8, an overlong NUL, 0xFF, past U+10FFFF, a cut sequence. */
const BAD_BYTES: ReadonlyArray<ReadonlyArray<number>> = [[0xed, 0xa0, 0x80], [0xc0, 0x80], [0xff], [0xf4, 0x90, 0x80, 0x80], [0xe2, 0x82]]

type TextOp = (text: string, rng: Rng, toml: boolean) => string | Buffer
const TEXT_OPS: Record<string, TextOp> = {
  "duplicate a line": duplicateLine,
  "delete a line": deleteLine,
  "swap two lines": swapLines,
  "CRLF line endings": (t) => t.replace(/\n/g, "\r\n"),
  "CR line endings": (t) => t.replace(/\n/g, "\r"),
  "tabs for indentation": (t) => t.replace(/^( {2})+/gm, (m) => "\t".repeat(m.length / 2)),
  "a BOM at the start": (t) => `\uFEFF${t}`,
  "a NUL byte": (t, rng) => insertAt(t, rng.int(t.length + 1), "\u0000"),
  "odd unicode in the text": (t, rng) => insertAt(t, rng.int(t.length + 1), rng.pick(ODD_UNICODE)),
  "bytes that are not UTF-8": (t, rng) => { const b = utf8(t); return spliceBytes(b, rng.int(b.length + 1), rng.pick(BAD_BYTES)) },
  "truncated": (t, rng) => { const b = utf8(t); return b.subarray(0, rng.int(b.length)) }
}

/** The changes to the text that mean something different to TOML's grammar (TOML has no indentation to break). */
const TOML_TEXT_OPS = new Set(["duplicate a line", "CRLF line endings", "a BOM at the start", "a NUL byte", "bytes that are not UTF-8", "truncated"])

// ---------------------------------------------------------------- hand-written inputs

const nestFlow = (n: number, open: string, close: string, inner = "x") => `${open.repeat(n)}${inner}${close.repeat(n)}`
const under = (key: string, value: string) => `${MINIMAL_YAML.trimEnd()}\n  ${key}: ${value}\n`

/** Block mappings nested `n` deep, one space per level (two would pass the 1 MiB limit). */
const blockMaps = (n: number, indent = 0) => Array.from({ length: n }, (_, i) => `${" ".repeat(indent + i)}a:`).join("\n") + " x\n"
/** Block sequences nested `n` deep, each on its own line. */
const blockSeqs = (n: number) => Array.from({ length: n }, (_, i) => `${" ".repeat(i)}-`).join("\n") + " x\n"

/** The billion-laughs shape: each level refers to the previous one ten times. */
const aliasBomb = (levels: number) => {
  const out = ["a0: &a0 [lol]"]
  for (let i = 1; i <= levels; i++) out.push(`a${i}: &a${i} [${Array.from({ length: 10 }, () => `*a${i - 1}`).join(", ")}]`)
  return `${out.join("\n")}\n`
}

const handWritten = (): Array<FuzzCase> => {
  const c = (name: string, input: FuzzInput): FuzzCase => ({ name, input })
  const M = MINIMAL_YAML
  const T = MINIMAL_TOML
  /** Several bottles in one file, each with its own name so that none is skipped as a duplicate. */
  const each = (extras: ReadonlyArray<string>) => extras.map((x, i) => `${M.replace("name: m", `name: m${i}`)}${x}`).join("---\n")
  return [
    // deep nesting, recursion, alias bombs
    c("flow [[[…]]] 1000 deep at the root", raw(nestFlow(1000, "[", "]"))),
    c("flow [[[…]]] 100 000 deep in a value", raw(under("prompt", nestFlow(100_000, "[", "]")))),
    c("flow {a: {a: …}} 1000 deep", raw(under("env", nestFlow(1000, "{a: ", "}")))),
    c("flow [{[{…}]}] 5000 deep, never closed", raw(under("env", "[{".repeat(5000)))),
    c("flow nesting 33 deep, just past the limit", raw(under("command", nestFlow(33, "[", "]")))),
    c("flow brackets inside a quoted string", raw(under("prompt", JSON.stringify(nestFlow(2000, "[", "]"))))),
    c("flow brackets inside a block scalar", raw(under("prompt", `|\n    ${nestFlow(2000, "[", "]")}`))),
    c("block mappings 1000 deep", raw(blockMaps(1000))),
    c("block mappings 1000 deep under spec.env", raw(`${M}  env:\n${blockMaps(1000, 4)}`)),
    c("block sequences 1000 deep", raw(blockSeqs(1000))),
    c("compact block sequences `- - - …` 5000 deep", raw(`${"- ".repeat(5000)}x\n`)),
    c("recursive alias a: &a [*a]", raw("a: &a [*a]\n")),
    c("recursive alias inside a bottle", raw(under("command", "&c [claude, *c]"))),
    c("alias bomb (9 levels of 10)", raw(aliasBomb(9))),
    c("alias bomb inside a bottle", raw(`${HEAD_YAML}x-bomb:\n${aliasBomb(9).replace(/^(?=.)/gm, "  ")}spec:\n  image: busybox\n  command: *a9\n`)),
    c("alias to an unknown anchor", raw(under("image", "*nope"))),
    c("bottle names and env keys that are Object.prototype members", raw(`${M.replace("name: m", "name: constructor")}  env: {toString: "x", hasOwnProperty: "y", valueOf: "z", __defineGetter__: "w"}\n---\n${M.replace("name: m", "name: prototype")}`)),
    c("anchors and aliases as keys, merge keys, complex keys", raw(each([
      "  env:\n    &k A: \"1\"\n    *k : \"2\"\n",
      "  env:\n    <<: {A: \"1\"}\n",
      "  env:\n    ? [a, b]\n    : c\n",
      "  env:\n    ? {a: b}\n    : c\n"
    ]))),
    // tags and directives
    c("!!python/object/apply:os.system", raw(under("image", "!!python/object/apply:os.system [\"touch /tmp/pwned\"]"))),
    c("!!python/object:os.system as the document", raw("!!python/object:os.system\nargs: [id]\n")),
    c("!include", raw(under("prompt", "!include /etc/passwd"))),
    c("!!binary, !!set, !!omap, a verbatim tag, !!int on a string, !!js/function, a tag on a key", raw(each([
      "  prompt: !!binary aGVsbG8=\n",
      "  env: !!set {A, B}\n",
      "  command: !!omap [{a: b}]\n",
      "  image: !<tag:yaml.org,2002:str> 5\n",
      "  resources: {pids: !!int \"12\"}\n",
      "  image: !!js/function 'function(){ return 1 }'\n",
      "  env:\n    !!str A: \"1\"\n",
      "  prompt: !!float 1\n"
    ]))),
    c("%TAG directive", raw(`%TAG !e! tag:evil.com,2000:\n---\n${M}  prompt: !e!x hi\n`)),
    c("%YAML 1.1 directive", raw(`%YAML 1.1\n---\n${M}  preserve: yes\n`)),
    c("%YAML 9.9 directive", raw(`%YAML 9.9\n---\n${M}`)),
    // huge values
    c("a 100 000-character prompt", yamlFile([{ ...minimal(), spec: { image: "busybox", prompt: "p".repeat(100_000) } }])),
    c("a 1 000 000-character env value", yamlFile([{ ...minimal(), spec: { image: "busybox", env: { A: "v".repeat(1_000_000) } } }])),
    c("a 1 000 000-character key, just under 1 MiB", raw(under("env", `{${"K".repeat(1_000_000)}: "1"}`))),
    c("a 300 000-character image name", yamlFile([{ ...minimal(), spec: { image: "i".repeat(300_000) } }])),
    c("a 300 000-character image name in TOML", tomlFile({ ...minimal(), spec: { image: "i".repeat(300_000) } })),
    c("a 300 000-character bottle name", yamlFile([{ ...minimal(), metadata: { name: "n".repeat(300_000) } }])),
    c("a 200 000-character egress host", yamlFile([{ ...minimal(), spec: { image: "busybox", egress: { allow: [`${"h".repeat(200_000)}.com`] } } }])),
    c("200 000 two-byte characters in a value", yamlFile([{ ...minimal(), spec: { image: "busybox", prompt: "é".repeat(200_000) } }])),
    c("a file over the 1 MiB limit", raw(`${M}  prompt: ${"p".repeat(1_100_000)}\n`)),
    c("75 000 env keys in a block mapping, just under 1 MiB", raw(`${M}  env:\n${Array.from({ length: 75_000 }, (_, i) => `    k${i.toString(36)}: v\n`).join("")}`)),
    c("500 empty documents before a bottle", raw(`${"---\n".repeat(500)}${M}`)),
    c("one line of 1 000 000 spaces", raw(`${" ".repeat(1_000_000)}\n${M}`)),
    // bytes
    c("NUL bytes in a name, a key and a value", raw(each(["  prompt: a\u0000b\n", "  e\u0000nv: {}\n"]).replace("name: m0", "name: m0\u0000x"))),
    c("NUL bytes only", raw(Buffer.alloc(4096))),
    c("a NUL byte in TOML", raw(T.replace("writer", "wri\u0000ter"), "toml")),
    c("two BOMs at the start", raw(`\uFEFF\uFEFF${M}`)),
    c("a UTF-16 LE file with its BOM", raw(Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(M, "utf16le")]))),
    c("a lone surrogate as WTF-8 bytes in a value", raw(Buffer.concat([utf8(`${M}  prompt: "`), Buffer.from([0xed, 0xa0, 0x80]), utf8("\"\n")]))),
    c("escaped lone surrogates in a value, a key and a name", raw(each(["  prompt: \"\\ud800\"\n", "  env: {\"A\\ud800\": \"1\"}\n", ""]).replace("name: m2", "name: \"m\\udfff\""))),
    c("an escaped lone surrogate in TOML", raw(T.replace("\"writer\"", "\"w\\uD800\""), "toml")),
    c("random binary junk", raw(Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 2654435761) % 251)))),
    c("a PNG header", raw(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d, 0x49, 0x48, 0x44, 0x52]))),
    c("a gzip header named .toml", raw(Buffer.from([0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0x03]), "toml")),
    c("terminal escapes in a value and a name", raw(each(["  prompt: \"\\e[2J\\e[31mred\\a\"\n", ""]).replace("name: m1", "name: \"m\\x1b[2J\""))),
    // empty and odd files
    c("an empty file", raw("")),
    c("an empty .toml file", raw("", "toml")),
    c("whitespace and comments only", raw("  \n\t\n\r\n# nothing\n")),
    c("document markers only", raw("---\n...\n---\n")),
    c("documents that are a scalar, a list, null and JSON", raw(`hello\n---\n- a\n- b\n---\nnull\n---\n${JSON.stringify(minimal())}\n`)),
    c("YAML in a .toml file", raw(M, "toml")),
    c("TOML in a .yaml file", raw(T)),
    c("a file with no extension", raw(M, "")),
    // TOML variants
    c("TOML inline tables everywhere", raw(`apiVersion = "bottle/v1"\nkind = "Bottle"\nmetadata = { name = "t" }\nspec = { image = "busybox", env = { A = "1" }, egress = { allow = ["a.com"] } }\n`, "toml")),
    c("TOML dotted keys", raw(`apiVersion = "bottle/v1"\nkind = "Bottle"\nmetadata.name = "t"\nspec.image = "busybox"\nspec.resources.cpus = 1\nspec.env.A = "1"\n`, "toml")),
    c("TOML arrays of tables", raw(`${T}\n[[spec.skills]]\npath = "x"\n[[spec.skills]]\npath = "y"\n`, "toml")),
    c("TOML datetimes as values", raw(`${T}\n[spec.sidecars]\negress = 1979-05-27T07:32:00Z\n`, "toml")),
    c("TOML local date as the name, local time as pids", raw(T.replace("\"writer\"", "1979-05-27").replace("pids = 64", "pids = 07:32:00"), "toml")),
    c("TOML integer overflow", raw(T.replace("pids = 64", "pids = 99999999999999999999999999"), "toml")),
    c("TOML hex, octal and binary integers", raw(T.replace("pids = 64", "pids = 0xDEAD_BEEF").replace("cpus = 0.5", "cpus = 0o17"), "toml")),
    c("TOML inf and nan", raw(T.replace("cpus = 0.5", "cpus = inf").replace("pids = 64", "pids = nan"), "toml")),
    c("TOML nested arrays", raw(T.replace("allow = [", "allow = [[\"a.com\"], [[1, 2], [\"b\"]], "), "toml")),
    c("TOML arrays nested 1000 deep", raw(`${T}\nx = ${nestFlow(1000, "[", "]", "1")}\n`, "toml")),
    c("TOML arrays nested 100 000 deep", raw(`x = ${nestFlow(100_000, "[", "]", "1")}\n`, "toml")),
    c("TOML inline tables nested 1000 deep", raw(`x = ${nestFlow(1000, "{ a = ", " }", "1")}\n`, "toml")),
    c("TOML dotted key 4000 deep", raw(`${Array.from({ length: 4000 }, () => "a").join(".")} = 1\n`, "toml")),
    c("TOML table header 4000 deep", raw(`[${Array.from({ length: 4000 }, () => "a").join(".")}]\nb = 1\n`, "toml")),
    c("TOML duplicate table", raw(`${T}\n[spec.env]\nB = "2"\n`, "toml")),
    c("TOML table redefined as a value", raw(`${T}\nspec = 1\n`, "toml")),
    c("TOML empty quoted key", raw(T.replace("LOG_LEVEL = \"info\"", "\"\" = \"x\""), "toml")),
    c("TOML __proto__ key", raw(T.replace("LOG_LEVEL", "__proto__"), "toml")),
    c("TOML quoted key with a dot", raw(T.replace("LOG_LEVEL", "\"A.B\""), "toml")),
    c("TOML multi-line and literal strings", raw(T.replace("\"You write documentation.\"", "'''\nline one\n  'two'\n'''"), "toml")),
    c("TOML unterminated multi-line string", raw(`${T}\nx = """never closed\n`, "toml")),
    c("TOML two documents", raw(`${T}\n---\n${T}`, "toml")),
    c("TOML 20 000 keys", raw(T.replace("LOG_LEVEL = \"info\"", Array.from({ length: 20_000 }, (_, i) => `E${i} = "v"`).join("\n")), "toml")),
    // not regular files
    c("a directory with no specs", { kind: "dir", entries: [] }),
    c("a directory whose spec is a directory", { kind: "dir", entries: [{ name: "a.yaml", dir: true }] }),
    c("a directory whose spec is a FIFO", { kind: "dir", entries: [{ name: "a.yaml", fifo: true }] }),
    c("a directory whose spec links to /dev/zero", { kind: "dir", entries: [{ name: "a.yaml", symlink: "/dev/zero" }] }),
    c("a directory whose spec is a symlink loop", { kind: "dir", entries: [{ name: "a.yaml", symlink: "a.yaml" }] }),
    c("a directory with a good spec and a junk one", { kind: "dir", entries: [{ name: "a.yaml", bytes: utf8(M) }, { name: "b.toml", bytes: Buffer.from([0xff, 0, 0xfe]) }] }),
    c("a FIFO", { kind: "fifo", ext: "yaml" }),
    c("/dev/zero", { kind: "path", path: "/dev/zero" }),
    c("/dev/urandom", { kind: "path", path: "/dev/urandom" }),
    c("/dev/null", { kind: "path", path: "/dev/null" }),
    c("a path that does not exist", { kind: "path", path: "/nonexistent/bottle/spec.yaml" }),
    // paths a spec names that are not what they seem
    c("promptFile and skills naming devices, directories and /proc", raw(each([
      "  promptFile: /dev/zero\n",
      "  promptFile: ./skills\n",
      "  promptFile: /proc/self/exe\n",
      "  skills: [/dev, /]\n",
      "  skills: [/proc/self]\n",
      "  skills: [./prompt.md]\n"
    ])))
  ]
}

// ---------------------------------------------------------------- generated inputs

interface Seed {
  readonly name: string
  readonly toml: boolean
  readonly docs: ReadonlyArray<Tree>
}

const SEEDS = (): ReadonlyArray<Seed> => [
  { name: "YAML, two bottles, every field", toml: false, docs: [researcher(), reviewer()] },
  { name: "TOML", toml: true, docs: [writer()] },
  { name: "YAML, minimal", toml: false, docs: [minimal()] }
]

const render = (seed: Seed, docs: ReadonlyArray<Tree>): string => (seed.toml ? tomlText(docs[0]) : yamlText(docs))
const fileOf = (seed: Seed, content: string | Buffer): FuzzInput => raw(content, seed.toml ? "toml" : "yaml")
const show = (p: Path) => (p.length === 0 ? "the document" : p.map((k) => (typeof k === "number" ? `[${k}]` : k)).join("."))

/** One structural change to one document. */
type TreeOp = (doc: Tree, rng: Rng, toml: boolean) => { readonly doc: Tree; readonly what: string }
const TREE_OPS: ReadonlyArray<TreeOp> = [
  (doc, rng) => { const p = rng.pick(pathsOf(doc).filter((x) => x.length > 0)); return { doc: deleteAt(doc, p), what: `delete ${show(p)}` } },
  (doc, rng, toml) => {
    const p = rng.pick(pathsOf(doc).filter((x) => !toml || x.length > 0))
    const type = rng.pick(toml ? TOML_TYPES : YAML_TYPES)
    return { doc: setAt(doc, p, retypedValue(type, rng)), what: `${show(p)} as a ${type}` }
  },
  (doc, rng) => { const p = rng.pick(stringPaths(doc)); const v = rng.pick(ODD_STRINGS()); return { doc: setAt(doc, p, v), what: `${show(p)} = ${JSON.stringify(v).slice(0, 40)}` } },
  (doc, rng) => {
    const p = rng.pick(stringPaths(doc)), u = rng.pick(ODD_UNICODE), v = getAt(doc, p) as string
    const at = rng.int(v.length + 1)
    return { doc: setAt(doc, p, v.slice(0, at) + u + v.slice(at)), what: `odd unicode in ${show(p)}` }
  },
  (doc, rng) => {
    const p = rng.pick(keyPaths(doc)), key = p[p.length - 1] as string
    const to = HOMOGLYPH_KEYS[key] ?? `${key}${rng.pick(ODD_UNICODE)}`
    return { doc: renameAt(doc, p, to), what: `key ${show(p)} renamed to a look-alike` }
  },
  (doc, rng) => {
    const p = rng.pick(stringPaths(doc)), n = rng.pick([100_000, 250_000, 600_000])
    return { doc: setAt(doc, p, rng.pick(["x", "é", "a-"]).repeat(n / 2)), what: `${show(p)} huge` }
  },
  (doc, rng) => {
    const p = rng.pick(pathsOf(doc).filter((x) => isObj(getAt(doc, x)))), n = rng.pick([20_000, 100_000, 300_000])
    return { doc: setAt(doc, p, { ...(getAt(doc, p) as object), [rng.pick(["k", "K_", "ключ"]).repeat(n / 4)]: "v" }), what: `a huge key in ${show(p)}` }
  }
]

/** A copy of a document under another bottle name, so that several in one file are all loaded. */
const named = (doc: Tree, name: string): Tree => setAt(doc, ["metadata", "name"], name)

/**
 * Strings YAML itself refuses before any document is decoded (`yes`, `1_000`):
 * one of them in a file of many documents would hide what the others test.
 */
const refusedByParser = (v: unknown) => typeof v === "string" && /^(y|yes|no|on|off|[-+]?[0-9]+_[0-9_]*|0x[0-9a-f]+)$/i.test(v)
const packable = (type: string, rng: Rng): unknown => {
  for (;;) {
    const v = retypedValue(type, rng)
    if (!refusedByParser(v)) return v
  }
}

/**
 * About 160 runs of the CLI. Each run costs most of a CPU-second (Node loading
 * the bundle), so YAML mutations that fail at the same stage share a file, one
 * document each: every document is parsed and decoded on its own.
 */
export const makeCases = (seed = 20240601, total = 160): ReadonlyArray<FuzzCase> => {
  const rng = prng(seed)
  const cases: Array<FuzzCase> = []
  const seeds = SEEDS()
  for (const s of seeds) cases.push({ name: `seed: ${s.name}`, input: fileOf(s, render(s, s.docs)), valid: true })
  const [full, toml] = seeds as [Seed, Seed, Seed]
  const doc = full.docs[0]
  const tdoc = toml.docs[0]
  const fullPaths = pathsOf(doc).filter((p) => p.length > 0)
  const tomlPaths = pathsOf(tdoc).filter((p) => p.length > 0)
  const chunks = <T>(xs: ReadonlyArray<T>, n: number) => Array.from({ length: Math.ceil(xs.length / n) }, (_, i) => xs.slice(i * n, i * n + n))

  // Every key of the full bottle deleted, six bottles to a file; a fifth of the TOML keys, one per file.
  for (const group of chunks(fullPaths, 6)) {
    cases.push({ name: `deleted: ${group.map(show).join(", ")}`, input: yamlFile(group.map((p, i) => deleteAt(named(doc, `d${i}`), p))) })
  }
  tomlPaths.filter((_, i) => i % 5 === 0).forEach((p) => cases.push({ name: `TOML deleted: ${show(p)}`, input: tomlFile(deleteAt(tdoc, p)) }))

  // Every path of the full bottle as a string, number, list, map, null and bool: three paths to a file.
  for (const group of chunks(pathsOf(doc), 3)) {
    const docs = group.flatMap((p, g) => YAML_TYPES.map((t, i) => setAt(named(doc, `r${g}-${i}`), p, packable(t, rng))))
    cases.push({ name: `retyped: ${group.map(show).join(", ")} as ${YAML_TYPES.join(", ")}`, input: yamlFile(docs) })
  }
  // A third of the TOML paths, each as one type in turn (TOML has datetimes, not null).
  tomlPaths.filter((_, i) => i % 3 === 0).forEach((p, i) => {
    const type = TOML_TYPES[i % TOML_TYPES.length]!
    cases.push({ name: `TOML retyped: ${show(p)} as a ${type}`, input: tomlFile(setAt(tdoc, p, retypedValue(type, rng))) })
  })

  // Duplicated keys.
  for (const s of seeds) cases.push({ name: `duplicated key (${s.name})`, input: fileOf(s, duplicateLine(render(s, s.docs), rng, s.toml)) })

  // Keys that look like the real ones: every look-alike in one YAML file, a few in TOML.
  const lookAlikes = Object.entries(HOMOGLYPH_KEYS).flatMap(([key, look], i) => {
    const p = keyPaths(doc).find((x) => x[x.length - 1] === key)
    return p === undefined ? [] : [renameAt(key === "name" || key === "metadata" ? doc : named(doc, `h${i}`), p, look)]
  })
  cases.push({ name: "homoglyph keys, one per bottle", input: yamlFile(lookAlikes) })
  for (const key of ["spec", "memory"]) {
    const p = keyPaths(tdoc).find((x) => x[x.length - 1] === key)!
    cases.push({ name: `TOML homoglyph key for ${key}`, input: tomlFile(renameAt(tdoc, p, HOMOGLYPH_KEYS[key]!)) })
  }

  // Every odd piece of unicode as a bottle name, in a value and in an env key (one bottle each), and some in TOML.
  cases.push({ name: "odd unicode in bottle names", input: yamlFile(ODD_UNICODE.map((u) => named(doc, `m${u}`))) })
  cases.push({ name: "odd unicode in env keys", input: yamlFile(ODD_UNICODE.map((u, i) => setAt(named(doc, `u${i}`), ["spec", "env"], { [`A${u}`]: "1" }))) })
  cases.push({
    name: "odd unicode in values",
    input: yamlFile(ODD_UNICODE.map((u, i) => {
      const p = rng.pick(stringPaths(doc).filter((x) => show(x) !== "metadata.name"))
      return setAt(named(doc, `v${i}`), p, `${getAt(doc, p) as string}${u}`)
    }))
  })
  cases.push({ name: "NFC and NFD spellings of one bottle name", input: raw(`${MINIMAL_YAML.replace("name: m", "name: caf\u00e9")}---\n${MINIMAL_YAML.replace("name: m", "name: cafe\u0301")}`) })
  for (const u of ["\u202Eevil", "\uD800"]) {
    const p = rng.pick(stringPaths(tdoc))
    cases.push({ name: `TOML odd unicode ${JSON.stringify(u)} in ${show(p)}`, input: tomlFile(setAt(tdoc, p, `${getAt(tdoc, p) as string}${u}`)) })
  }

  // Each change to the text on the full YAML bottles; those that matter to TOML's grammar on TOML too.
  for (const [what, op] of Object.entries(TEXT_OPS)) {
    for (const s of TOML_TEXT_OPS.has(what) ? [full, toml] : [full]) cases.push({ name: `${what} (${s.name})`, input: fileOf(s, op(render(s, s.docs), rng, s.toml)) })
  }

  cases.push(...handWritten())

  // The rest: YAML files of three bottles with one to three changes each, or a changed TOML bottle; perhaps a change to the text.
  const opNames = Object.keys(TEXT_OPS)
  for (let n = 0; cases.length < total; n++) {
    const s = rng.pick(seeds)
    const whats: Array<string> = []
    const docs = s.toml ? [tdoc] : [0, 1, 2].map((i) => named(rng.pick(s.docs), `x${i}`))
    for (const [d, start] of docs.entries()) {
      let cur = start
      for (let k = 1 + rng.int(3); k > 0; k--) {
        const r = rng.pick(TREE_OPS)(cur, rng, s.toml)
        cur = r.doc
        whats.push(r.what)
      }
      docs[d] = cur
    }
    let content: string | Buffer = render(s, docs)
    if (rng.next() < 0.3) {
      const what = rng.pick(opNames)
      content = TEXT_OPS[what]!(content, rng, s.toml)
      whats.push(what)
    }
    cases.push({ name: `random #${n} (${s.toml ? "TOML" : "YAML"}): ${whats.join("; ")}`, input: fileOf(s, content) })
  }
  return cases
}
