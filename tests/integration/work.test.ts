/**
 * Working in a bottle, with real software: the real Claude Code CLI (made
 * by scripts/debian-images.sh) in a bottle whose proxy is the real
 * mitmproxy, talking to a fake Anthropic Messages API on HTTPS (a test CA
 * only the proxy trusts) reached as api.anthropic.com on the bottle's
 * egress network. The agent holds a placeholder; the proxy puts the real key
 * in. Plus exec and logs, the user's own workspace, and an image bottle
 * builds.
 */
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs"
import { spawnSync } from "node:child_process"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { AGENT_IMAGE, BIN, bottle, docker, dockerOk, EGRESS_IMAGE, engineAvailable, ensureTestImages, ROOT, scrub, uniquePrefix } from "../support/docker.js"
import { makeTestPki } from "../support/testCa.js"

const available = engineAvailable()
const CLAUDE_IMAGE = "bottle-local/claude-code:latest"
const KEY = "sk-ant-test-real-key-0f7c21d9"
const REPLY = "Hello from the fake model"

describe.skipIf(!available)("working in a bottle", () => {
  const prefix = uniquePrefix("work")
  const home = mkdtempSync(join(tmpdir(), "bottle-home-"))
  const dir = mkdtempSync(join(tmpdir(), "bottle-specs-"))
  const env = { BOTTLE_PREFIX: prefix, BOTTLE_HOME: home, BOTTLE_EGRESS_IMAGE: EGRESS_IMAGE, BOTTLE_SMOLVM: "/nonexistent/smolvm", TEST_ANTHROPIC_KEY: KEY }
  const file = join(dir, "cc.yaml")
  const workspace = join(dir, "repo")
  const upstream = `${prefix}-fakeapi`

  beforeAll(() => {
    ensureTestImages()
    execImage(CLAUDE_IMAGE)
    const pki = makeTestPki("api.anthropic.com")
    writeFileSync(join(dir, "upstream-ca.pem"), pki.caPem)
    writeFileSync(join(dir, "server.pem"), pki.certPem)
    writeFileSync(join(dir, "server.key"), pki.keyPem)
    mkdirSync(workspace)
    writeFileSync(join(workspace, "README.md"), "the user's own repo\n")
    // The agent runs as its image's user (uid 1000): it may write the repo.
    chmodSync(workspace, 0o777)
    writeFileSync(file, [
      "apiVersion: bottle/v1",
      "kind: Bottle",
      "metadata: { name: cc }",
      "spec:",
      `  image: ${CLAUDE_IMAGE}`,
      "  workspace: ./repo",
      "  egress:",
      "    allow: [api.anthropic.com]",
      "    trust: [./upstream-ca.pem]",
      "  env: { DISABLE_TELEMETRY: \"1\", DISABLE_ERROR_REPORTING: \"1\", CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: \"1\" }",
      "  secrets:",
      "    ANTHROPIC_API_KEY:",
      "      from: env:TEST_ANTHROPIC_KEY",
      "      inject: { host: api.anthropic.com, header: x-api-key }",
      "  resources: { memory: 1g }",
      ""
    ].join("\n"))
    const r = bottle(env, "apply", "-f", file)
    if (r.status !== 0) throw new Error(`apply failed: ${r.stdout}${r.stderr}`)
    docker("run", "-d", "--name", upstream, "--network", `${prefix}-cc_egress`, "--network-alias", "api.anthropic.com",
      "-v", `${dir}:/certs:ro`, "-v", `${join(ROOT, "tests", "support", "fakeAnthropic.py")}:/fake.py:ro`,
      EGRESS_IMAGE, "python3", "/fake.py", "/certs/server.pem", "/certs/server.key", REPLY)
    for (let i = 0; i < 50 && !docker("logs", upstream).includes("listening"); i++) spawnSync("sleep", ["0.1"])
  })
  afterAll(() => {
    dockerOk("rm", "-f", upstream)
    scrub(prefix)
  })

  it("the real Claude Code CLI, run with bottle exec, gets the fake model's reply", () => {
    const r = bottle(env, "exec", "cc", "--", "claude", "-p", "say hi")
    expect(r.stderr).toBe("")
    expect(r.status).toBe(0)
    expect(r.stdout.trim()).toBe(REPLY)
  })

  it("the upstream received the real key; the agent sees only a placeholder, in its env and in every file it can read", () => {
    const received = docker("logs", upstream).split("\n").filter((l) => l.includes('"POST"')).map((l) => JSON.parse(l) as { key: string })
    expect(received.length).toBeGreaterThan(0)
    expect(received.every((x) => x.key === KEY)).toBe(true)
    const agentEnv = bottle(env, "exec", "cc", "--", "env").stdout
    expect(agentEnv).toContain("ANTHROPIC_API_KEY=bottle-placeholder-anthropic_api_key")
    expect(agentEnv).not.toContain(KEY)
    // Every file the agent can read, and what its processes were started with.
    const grep = bottle(env, "exec", "cc", "--", "sh", "-c", `grep -rl --exclude-dir=proc --exclude-dir=sys "${KEY}" / 2>/dev/null; cat /proc/*/environ 2>/dev/null | grep -c "${KEY}"; echo scanned`)
    expect(grep.stdout.trim()).toBe("0\nscanned")
    // Nor the container's config, its labels, or what bottle prints.
    expect(docker("inspect", `${prefix}-cc-agent-1`, `${prefix}-cc-egress-1`)).not.toContain(KEY)
    expect(bottle(env, "diff", "-f", file, "-o", "json").stdout).not.toContain(KEY)
    expect(readFileSync(join(home, "state", "cc", "metadata.json"), "utf8")).not.toContain(KEY)
    // Where the proxy keeps it: its own config dir, readable by its owner only, never mounted into the agent.
    const secret = join(home, "state", "cc", "egress", "secrets", "ANTHROPIC_API_KEY")
    expect(readFileSync(secret, "utf8")).toBe(KEY)
    expect(statSync(secret).mode & 0o777).toBe(0o600)
    expect(docker("inspect", "--format", "{{json .Mounts}}", `${prefix}-cc-agent-1`)).not.toContain("/egress")
  })

  it("trusts the bottle's own CA, whose key the agent never sees", () => {
    const envs = bottle(env, "exec", "cc", "--", "env").stdout
    for (const v of ["NODE_EXTRA_CA_CERTS=/bottle/ca.pem", "SSL_CERT_FILE=/bottle/ca-bundle.pem", "REQUESTS_CA_BUNDLE=/bottle/ca-bundle.pem", "GIT_SSL_CAINFO=/bottle/ca-bundle.pem"]) expect(envs).toContain(v)
    expect(bottle(env, "exec", "cc", "--", "cat", "/bottle/ca.pem").stdout).toContain("BEGIN CERTIFICATE")
    expect(bottle(env, "exec", "cc", "--", "sh", "-c", "grep -rl 'PRIVATE KEY' /bottle /workspace /home 2>/dev/null; echo scanned").stdout.trim()).toBe("scanned")
    expect(statSync(join(home, "state", "cc", "egress", "ca", "mitmproxy-ca.pem")).mode & 0o777).toBe(0o600)
  })

  it("a request to a host not allowed shows as refused in bottle logs --egress", () => {
    const refused = bottle(env, "exec", "cc", "--", "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "https://example.org/")
    // curl reports the proxy's refusal of the CONNECT (000: the tunnel never opened).
    expect(refused.stdout).toMatch(/^(000|403)$/)
    const table = bottle(env, "logs", "cc", "--egress")
    expect(table.status).toBe(0)
    expect(table.stdout.split("\n")[0]).toMatch(/^TIME\s+METHOD\s+HOST\s+VERDICT\s+RULE$/)
    expect(table.stdout).toMatch(/CONNECT\s+example\.org:443\s+REFUSED\s+-/)
    expect(table.stdout).toMatch(/POST\s+api\.anthropic\.com:443\s+allowed\s+api\.anthropic\.com/)
    const json = JSON.parse(bottle(env, "logs", "cc", "--egress", "-o", "json").stdout) as Array<{ host: string; verdict: string; method: string }>
    expect(json).toContainEqual(expect.objectContaining({ method: "CONNECT", host: "example.org", verdict: "refused" }))
  })

  it("exec passes on the command's exit code, stdin, and works under a terminal", () => {
    expect(bottle(env, "exec", "cc", "--", "sh", "-c", "exit 3").status).toBe(3)
    const piped = spawnSync(process.execPath, [BIN, "exec", "-i", "cc", "--", "cat"], { env: { ...process.env, ...env }, input: "through stdin\n", encoding: "utf8" })
    expect(piped.stdout).toBe("through stdin\n")
    const command = [process.execPath, BIN, "exec", "-it", "cc", "--", "sh", "-c", "tty && echo inside-a-tty"].map((a) => `'${a}'`).join(" ")
    const tty = spawnSync("script", ["-qefc", command, "/dev/null"], { env: { ...process.env, ...env }, encoding: "utf8", timeout: 60_000 })
    expect(tty.status, tty.stdout + tty.stderr).toBe(0)
    expect(tty.stdout).toMatch(/\/dev\/pts\/\d+/)
    expect(tty.stdout).toContain("inside-a-tty")
  })

  it("the user's own workspace is where the agent works, read-write", () => {
    expect(bottle(env, "exec", "cc", "--", "cat", "README.md").stdout).toBe("the user's own repo\n")
    expect(bottle(env, "exec", "cc", "--", "sh", "-c", "echo from-the-agent > notes.md").status).toBe(0)
    expect(readFileSync(join(workspace, "notes.md"), "utf8")).toBe("from-the-agent\n")
  })

  it("a bottle or service that is not there is exit 2 with a clear error", () => {
    const none = bottle(env, "exec", "nosuch", "--", "true")
    expect(none.status).toBe(2)
    expect(none.stderr).toContain("no bottle named 'nosuch' runs here")
    docker("stop", "-t", "0", `${prefix}-cc-agent-1`)
    const stopped = bottle(env, "exec", "cc", "--", "true")
    expect(stopped.status).toBe(2)
    expect(stopped.stderr).toContain("is not running")
    expect(bottle(env, "logs", "nosuch").status).toBe(2)
    docker("start", `${prefix}-cc-agent-1`)
  })

  it("a secret that cannot be had refuses its bottle, naming the secret and never a value", () => {
    const r = bottle({ ...env, TEST_ANTHROPIC_KEY: "" }, "diff", "-f", file)
    expect(r.status).toBe(2)
    expect(r.stdout).toContain("secret ANTHROPIC_API_KEY: environment variable TEST_ANTHROPIC_KEY is not set")
  })
})

describe.skipIf(!available)("an image bottle builds", () => {
  const prefix = uniquePrefix("build")
  const home = mkdtempSync(join(tmpdir(), "bottle-home-"))
  const dir = mkdtempSync(join(tmpdir(), "bottle-specs-"))
  const env = { BOTTLE_PREFIX: prefix, BOTTLE_HOME: home, BOTTLE_EGRESS_IMAGE: EGRESS_IMAGE, BOTTLE_SMOLVM: "/nonexistent/smolvm" }
  const file = join(dir, "b.yaml")
  const images = () => docker("images", "--format", "{{.Repository}}:{{.Tag}}").split("\n").filter((l) => l.startsWith(`${prefix}-`))
  afterAll(() => {
    scrub(prefix)
    for (const i of images()) dockerOk("rmi", "-f", i)
  })

  it("builds from a context through the Engine (honouring .dockerignore), tagged by what the build sees; rebuilds only when that changes", () => {
    ensureTestImages()
    mkdirSync(join(dir, "ctx"))
    writeFileSync(join(dir, "ctx", "Dockerfile"), `FROM ${AGENT_IMAGE}\nARG GREETING\nCOPY hello.txt /hello.txt\nRUN echo "$GREETING" > /greeting.txt\n`)
    writeFileSync(join(dir, "ctx", "hello.txt"), "one\n")
    writeFileSync(join(dir, "ctx", "ignored.bin"), "never sent\n")
    writeFileSync(join(dir, "ctx", ".dockerignore"), "*.bin\n")
    writeFileSync(file, `apiVersion: bottle/v1\nkind: Bottle\nmetadata: { name: built }\nspec:\n  build: { context: ./ctx, args: { GREETING: hi } }\n  resources: { memory: 64m }\n`)
    const first = bottle(env, "apply", "-f", file)
    expect(first.status, first.stdout + first.stderr).toBe(0)
    expect(first.stdout).toMatch(new RegExp(`\\+ image build ${prefix}-built-agent:[0-9a-f]{16}`))
    expect(images()).toHaveLength(1)
    const agent = `${prefix}-built-agent-1`
    expect(docker("exec", agent, "cat", "/hello.txt", "/greeting.txt")).toBe("one\nhi")
    // Nothing .dockerignore names reached the build (its COPY of everything would have failed the test below otherwise).
    // The same context: no build, nothing to do.
    expect(bottle(env, "diff", "-f", file).status).toBe(0)
    // An ignored file changes: still nothing to do.
    writeFileSync(join(dir, "ctx", "ignored.bin"), "changed, still never sent\n")
    expect(bottle(env, "diff", "-f", file).status).toBe(0)
    // A file the build sees changes: built again, and the agent replaced.
    writeFileSync(join(dir, "ctx", "hello.txt"), "two\n")
    const second = bottle(env, "apply", "-f", file, "--yes")
    expect(second.status, second.stdout + second.stderr).toBe(0)
    expect(second.stdout).toContain("image build")
    expect(second.stdout).toMatch(new RegExp(`-/\\+ container ${agent} {2}\\(spec changed: image\\)`))
    expect(docker("exec", agent, "cat", "/hello.txt")).toBe("two")
  })

  it("a build that fails says which step failed and why, and starts nothing", () => {
    mkdirSync(join(dir, "broken"))
    writeFileSync(join(dir, "broken", "Dockerfile"), `FROM ${AGENT_IMAGE}\nRUN echo 'ünïcode step output'; exit 7\n`)
    const broken = join(dir, "broken.yaml")
    writeFileSync(broken, `apiVersion: bottle/v1\nkind: Bottle\nmetadata: { name: broken }\nspec:\n  build: { context: ./broken }\n  resources: { memory: 64m }\n`)
    const r = bottle(env, "apply", "-f", broken)
    expect(r.status, r.stdout + r.stderr).toBe(1)
    expect(r.stdout + r.stderr).toMatch(/FAILED BuildImage \S+: .*the build failed: .*returned a non-zero code: 7/)
    expect(dockerOk("inspect", `${prefix}-broken-agent-1`) && docker("inspect", "--format", "{{.State.Running}}", `${prefix}-broken-agent-1`) === "true").toBe(false)
  })
})

/** Fails loudly when an image the tests need is missing (made by .ci/setup). */
const execImage = (image: string) => {
  if (!dockerOk("image", "inspect", image)) throw new Error(`${image} is missing: run bash scripts/debian-images.sh`)
}

