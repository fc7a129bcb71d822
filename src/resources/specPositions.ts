/**
 * Where things are in a spec file: positions of field paths, and how a path
 * is written in a message. Kept apart from the parsers (parseDocuments.ts),
 * which load the YAML and TOML libraries only when a spec is read. Pure.
 */
import type { SpecProblem } from "./specError.js"

export interface Position { readonly line: number; readonly column: number }

/** One document of a spec file, before schema decoding. */
export interface ParsedDocument {
  readonly value: unknown
  readonly position: Position
  /** Position of each field, keyed by `pathKey(path)`. */
  readonly positions: ReadonlyMap<string, Position>
}

export type ParseResult =
  | { readonly _tag: "Ok"; readonly documents: ReadonlyArray<ParsedDocument> }
  | { readonly _tag: "Err"; readonly problems: ReadonlyArray<SpecProblem> }

export const pathKey = (path: ReadonlyArray<PropertyKey>): string => path.map(String).join("\u0000")
export const pathText = (path: ReadonlyArray<PropertyKey>): string =>
  path.map((p, i) => (typeof p === "number" ? `[${p}]` : i === 0 ? short(String(p)) : `.${short(String(p))}`)).join("")

/** A key as a message shows it: a huge one is cut. */
export const short = (key: string) => (key.length > 60 ? `${key.slice(0, 57)}...` : key)

/** A spec file larger than this is refused before parsing. */
export const MAX_SPEC_BYTES = 1024 * 1024
/** The closest recorded position at or above a path. */
export const nearest = (positions: ReadonlyMap<string, Position>, path: ReadonlyArray<PropertyKey>): Position | undefined => {
  for (let n = path.length; n >= 0; n--) {
    const p = positions.get(pathKey(path.slice(0, n)))
    if (p) return p
  }
  return undefined
}

