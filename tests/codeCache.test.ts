/**
 * The built CLI keeps V8's compiled code in $BOTTLE_HOME/cache between
 * starts. Whoever can write compiled code there runs it at the next start,
 * so: it lives only in BOTTLE_HOME (never handed to an agent), is made only
 * once BOTTLE_HOME exists, is private to the user, and a cache that is not
 * what bottle wrote (garbage, a FIFO, a symlink) is never trusted nor blocks
 * a start. These run the bundle, which `npm test` builds first.
 */
import { spawnSync } from "node:child_process"
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { BIN } from "./support/docker.js"

const root = mkdtempSync(join(tmpdir(), "bottle-codecache-"))
afterAll(() => rmSync(root, { recursive: true, force: true }))

const help = (home: string) => {
  const r = spawnSync(process.execPath, [BIN, "--help"], { env: { ...process.env, NO_COLOR: "1", BOTTLE_HOME: home }, encoding: "utf8", timeout: 30_000 })
  expect(r.error).toBeUndefined()
  expect(r.status).toBe(0)
  return r.stdout
}

const freshHome = (name: string) => {
  const home = join(root, name)
  rmSync(home, { recursive: true, force: true })
  mkdirSync(home, { mode: 0o700 })
  return home
}

const appCache = (home: string) => {
  const dir = join(home, "cache")
  const files = existsSync(dir) ? readdirSync(dir).filter((f) => f.startsWith("app-") && f.endsWith(".v8")) : []
  return files.length === 1 ? join(dir, files[0]!) : undefined
}

describe("the compile cache", () => {
  it("is written once BOTTLE_HOME exists, private to the user, and a second start uses it unchanged", () => {
    const home = freshHome("plain")
    const first = help(home)
    expect(first).toContain("bottle")
    const file = appCache(home)
    expect(file).toBeDefined()
    expect(statSync(join(home, "cache")).mode & 0o777).toBe(0o700)
    expect(statSync(file!).mode & 0o777).toBe(0o600)
    const before = readFileSync(file!)
    const mtime = statSync(file!).mtimeMs
    // The same answer from the cached start, and the cache was accepted (not written again).
    expect(help(home)).toBe(first)
    expect(statSync(file!).mtimeMs).toBe(mtime)
    expect(readFileSync(file!).equals(before)).toBe(true)
  })

  it("is not made where BOTTLE_HOME does not exist: --help creates nothing", () => {
    const home = join(root, "absent")
    help(home)
    expect(existsSync(home)).toBe(false)
  })

  it("refuses a cache that is garbage, still answers, and replaces it with one it wrote", () => {
    const home = freshHome("garbage")
    const expected = help(home)
    const file = appCache(home)!
    const garbage = Buffer.alloc(statSync(file).size, 0x41)
    writeFileSync(file, garbage)
    expect(help(home)).toBe(expected)
    expect(readFileSync(file).equals(garbage)).toBe(false)
  })

  it("does not block on a FIFO in the cache's place, nor follow a symlink there", () => {
    const home = freshHome("special")
    const expected = help(home)
    const file = appCache(home)!
    rmSync(file)
    expect(spawnSync("mkfifo", [file]).status).toBe(0)
    // A reader that opened the FIFO would wait for a writer forever; the timeout in help() would fail this.
    expect(help(home)).toBe(expected)
    expect(lstatSync(file).isFile()).toBe(true)

    const elsewhere = join(root, "planted.v8")
    writeFileSync(elsewhere, readFileSync(file))
    rmSync(file)
    symlinkSync(elsewhere, file)
    expect(help(home)).toBe(expected)
    // Not followed: the symlink was replaced by a file of bottle's, and what it pointed at is untouched.
    expect(lstatSync(file).isSymbolicLink()).toBe(false)
    expect(existsSync(elsewhere)).toBe(true)
  })

  it("removes the caches an earlier build of the same bundle left, and nothing else", () => {
    const home = freshHome("upgrade")
    const expected = help(home)
    const file = appCache(home)!
    const dir = join(home, "cache")
    const name = file.split("/").pop()!
    // What an earlier build (another hash) left, what another node left, and files that are not bottle's caches.
    const earlier = name.replace(/-[0-9a-f]{32}-/, `-${"0".repeat(32)}-`)
    const otherNode = name.replace(/-v[0-9.]+-/, "-v99.0.0-").replace(/-[0-9a-f]{32}-/, `-${"1".repeat(32)}-`)
    const foreign = ["notes.txt", "app-latest.v8", `lazy-parseDocuments-${"2".repeat(32)}-v1.0.0-x64.v8`]
    for (const f of [earlier, otherNode, ...foreign]) writeFileSync(join(dir, f), "x")
    rmSync(file)
    // The start without a cache writes one, and removes the earlier build's.
    expect(help(home)).toBe(expected)
    const left = readdirSync(dir).sort()
    expect(left).toContain(name)
    expect(left).not.toContain(earlier)
    expect(left).toEqual(expect.arrayContaining([otherNode, ...foreign]))
  })
})
