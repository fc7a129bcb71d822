/**
 * The built CLI keeps V8's compiled code in $BOTTLE_HOME/cache between
 * starts. Whoever can write compiled code there runs it at the next start,
 * so: it lives only in BOTTLE_HOME (never handed to an agent), is made only
 * once BOTTLE_HOME exists, is private to the user, and a cache that is not
 * what bottle wrote (garbage, a FIFO, a symlink) is never trusted nor blocks
 * a start. These run the bundle, which `npm test` builds first.
 */
import { spawnSync } from "node:child_process"
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { BIN } from "./support/docker.js"

const root = mkdtempSync(join(tmpdir(), "bottle-codecache-"))
afterAll(() => rmSync(root, { recursive: true, force: true }))

/** `bottle <args>`, which must end with 0; its output. */
const run = (home: string, args: ReadonlyArray<string>) => {
  const r = spawnSync(process.execPath, [BIN, ...args], { env: { ...process.env, NO_COLOR: "1", BOTTLE_HOME: home }, encoding: "utf8", timeout: 30_000 })
  expect(r.error).toBeUndefined()
  expect(r.status, r.stderr).toBe(0)
  return r.stdout
}

const help = (home: string, command: ReadonlyArray<string> = []) => run(home, [...command, "--help"])

/** The commands a cache names in its first line; undefined when it has no such line. */
const commandsIn = (file: string) => /^bottle-code-cache ([^\n]*)\n/.exec(readFileSync(file).subarray(0, 1024).toString("latin1"))?.[1]?.split(",")

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

  it("learns each command's code once, from a run of its handler: a command the cache does not name writes it again, naming both; then it is kept", () => {
    const home = freshHome("learns")
    const top = help(home)
    const file = appCache(home)!
    expect(commandsIn(file)).toEqual(["help"])
    const helpOnly = statSync(file).size
    // `requests --help` runs no handler: nothing new to learn, the cache is kept.
    const mtime = statSync(file).mtimeMs
    expect(help(home, ["requests"])).toContain("requests")
    expect(commandsIn(file)).toEqual(["help"])
    expect(statSync(file).mtimeMs).toBe(mtime)
    // `requests` runs its handler, code `--help` never ran: the cache is written again, with that code as well.
    const listed = run(home, ["requests"])
    expect(listed).toContain("No pending requests.")
    expect(commandsIn(file)).toEqual(["help", "requests"])
    expect(statSync(file).size).toBeGreaterThan(helpOnly)
    const learned = statSync(file).mtimeMs
    // Both named: neither writes it again, and both answer as before.
    expect(run(home, ["requests"])).toBe(listed)
    expect(help(home)).toBe(top)
    expect(statSync(file).mtimeMs).toBe(learned)
  })

  it("does not trust a cache without its first line, nor the commands a refused cache names", () => {
    const home = freshHome("header")
    const expected = help(home)
    const file = appCache(home)!
    const bytes = readFileSync(file)
    const v8 = bytes.subarray(bytes.indexOf(0x0a) + 1)
    // V8's bytes alone (as an earlier build wrote them): not handed to V8, and written again with the line.
    writeFileSync(file, v8)
    expect(help(home)).toBe(expected)
    expect(commandsIn(file)).toEqual(["help"])
    // A line naming commands over bytes V8 refuses: the commands are not carried over.
    writeFileSync(file, Buffer.concat([Buffer.from("bottle-code-cache help,requests,diff\n"), Buffer.alloc(v8.length, 0x41)]))
    expect(run(home, ["requests"])).toContain("No pending requests.")
    expect(commandsIn(file)).toEqual(["requests"])
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

  it("removes all but the two newest caches earlier builds of the same bundle left, and what a killed write left; nothing else", () => {
    const home = freshHome("upgrade")
    const expected = help(home)
    const file = appCache(home)!
    const dir = join(home, "cache")
    const name = file.split("/").pop()!
    const build = (digit: string) => name.replace(/-[0-9a-f]{32}-/, `-${digit.repeat(32)}-`)
    // Three earlier builds (the oldest first), another node's cache, files that are not bottle's caches,
    // and the temporary files of a write whose process is gone and of one still running (this test's).
    const [oldest, older, newer] = [build("0"), build("1"), build("2")]
    const otherNode = name.replace(/-v[0-9.]+-/, "-v99.0.0-").replace(/-[0-9a-f]{32}-/, `-${"3".repeat(32)}-`)
    const foreign = ["notes.txt", "app-latest.v8", `lazy-parseDocuments-${"4".repeat(32)}-v1.0.0-x64.v8`]
    const deadTmp = `${name}.999999999.tmp`
    const liveTmp = `${name}.${process.pid}.tmp`
    for (const f of [oldest, older, newer, otherNode, ...foreign, deadTmp, liveTmp]) writeFileSync(join(dir, f), "x")
    const now = Date.now() / 1000
    for (const [f, age] of [[oldest, 300], [older, 200], [newer, 100]] as const) utimesSync(join(dir, f), now - age, now - age)
    rmSync(file)
    // The start without a cache writes one, and removes the oldest earlier build's and the dead write's.
    expect(help(home)).toBe(expected)
    const left = readdirSync(dir).sort()
    expect(left).toContain(name)
    expect(left).not.toContain(oldest)
    expect(left).not.toContain(deadTmp)
    expect(left).toEqual(expect.arrayContaining([older, newer, otherNode, ...foreign, liveTmp]))
  })
})
