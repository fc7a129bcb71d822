/**
 * The git gate and the supervisor, end to end on the real engine, with real
 * software: the agent is the Claude Code image (it has git), the gate runs
 * git daemon, ssh and git-secrets (images/git-gate), the upstream is a
 * stand-in git host over SSH (tests/images/git-upstream) on the bottle's
 * egress network, which only the gate can reach; the supervisor is the MCP
 * SDK's server (images/supervise), asked by an MCP client in the agent.
 */
import { chmodSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { execFileSync, spawnSync } from "node:child_process"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { bottle, docker, dockerOk, EGRESS_IMAGE, engineAvailable, ensureTestImages, ROOT, scrub, uniquePrefix } from "../support/docker.js"

const available = engineAvailable()
const AGENT = "bottle-local/claude-code:latest"
const GATE = "bottle-local/git-gate:latest"
const SUPERVISE = "bottle-local/supervise:latest"
const UPSTREAM = "bottle-local/git-upstream:latest"
/** An AWS-style access key id no real account has (not AWS's documented example, which git-secrets allows). */
const PLANTED = `AKIA${"QZ7XWV2MB4NR6TY3"}`

describe.skipIf(!available)("the git gate and the supervisor", () => {
  const prefix = uniquePrefix("side")
  const home = mkdtempSync(join(tmpdir(), "bottle-home-"))
  const dir = mkdtempSync(join(tmpdir(), "bottle-specs-"))
  const keys = mkdtempSync(join(tmpdir(), "bottle-keys-"))
  const env = { BOTTLE_PREFIX: prefix, BOTTLE_HOME: home, BOTTLE_EGRESS_IMAGE: EGRESS_IMAGE, BOTTLE_GIT_IMAGE: GATE, BOTTLE_SUPERVISE_IMAGE: SUPERVISE, BOTTLE_SMOLVM: "/nonexistent/smolvm" }
  const file = join(dir, "side.yaml")
  const upstream = `${prefix}-upstream`
  const repo = "/srv/git/repo.git"
  let deployKey = ""

  /** Runs a shell command in the agent, as the agent. */
  const inAgent = (script: string) => bottle(env, "exec", "sb", "--", "sh", "-c", script)
  const upstreamLog = () => docker("exec", "-u", "git", upstream, "git", "--git-dir", repo, "log", "--format=%s", "main")

  beforeAll(() => {
    ensureTestImages()
    execFileSync("bash", [join(ROOT, "scripts", "sidecar-images.sh")], { stdio: ["ignore", "ignore", "inherit"] })
    // The upstream's host key (pinned in the spec) and the gate's deploy key (a secret only the gate gets).
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", join(keys, "ssh_host_ed25519_key")])
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "gate", "-f", join(keys, "deploy")])
    writeFileSync(join(keys, "authorized_keys"), readFileSync(join(keys, "deploy.pub")))
    chmodSync(join(keys, "authorized_keys"), 0o644)
    // sshd reads authorized_keys as the upstream's git user: the directory must let it through.
    chmodSync(keys, 0o755)
    deployKey = readFileSync(join(keys, "deploy"), "utf8")
    const hostKey = readFileSync(join(keys, "ssh_host_ed25519_key.pub"), "utf8").trim().split(" ").slice(0, 2).join(" ")
    writeFileSync(file, [
      "apiVersion: bottle/v1",
      "kind: Bottle",
      "metadata: { name: sb }",
      "spec:",
      `  image: ${AGENT}`,
      "  egress:",
      "    allow: [api.anthropic.com]   # the model, and nothing else",
      "  git:",
      "    remotes:",
      "      - { name: origin, url: \"ssh://git@upstream.test/srv/git/repo.git\", push: true, sshKey: DEPLOY_KEY }",
      "      - { name: mirror, url: \"git@upstream.test:/srv/git/repo.git\" }",
      "    hostKeys:",
      `      - "upstream.test ${hostKey}"`,
      "  supervise: true",
      "  secrets:",
      `    DEPLOY_KEY: { from: "file:${join(keys, "deploy")}" }`,
      "  resources: { memory: 1g }",
      ""
    ].join("\n"))
    const r = bottle(env, "apply", "-f", file)
    if (r.status !== 0) throw new Error(`apply failed: ${r.stdout}${r.stderr}`)
    // The upstream: on the egress network (the gate's side), never on the agent's.
    docker("run", "-d", "--name", upstream, "--network", `${prefix}-sb_egress`, "--network-alias", "upstream.test", "-v", `${keys}:/etc/upstream:ro`, UPSTREAM)
    docker("exec", "-u", "git", upstream, "sh", "-c",
      `git init -q --bare ${repo} && git init -q /tmp/seed && cd /tmp/seed && echo hello > README && git add README && ` +
      `git -c user.name=u -c user.email=u@x commit -qm initial && git push -q ${repo} HEAD:main && git --git-dir ${repo} symbolic-ref HEAD refs/heads/main`)
  }, 600_000)
  afterAll(() => {
    dockerOk("rm", "-f", upstream, `${prefix}-docs`)
    scrub(prefix)
  })

  it("apply proved the agent reaches both sidecars, and nothing else", () => {
    const r = bottle(env, "verify", "sb")
    expect(r.stdout).toMatch(/sidecars answer/)
    expect(r.status, r.stdout + r.stderr).toBe(0)
  })

  it("the agent clones through the gate, by the remote's own URL, and cannot reach the upstream itself", () => {
    const r = inAgent("cd /tmp && rm -rf w && git clone -q ssh://git@upstream.test/srv/git/repo.git w && cat w/README && git -C w remote get-url origin")
    expect(r.stderr).toBe("")
    expect(r.status).toBe(0)
    expect(r.stdout).toContain("hello")
    // Straight to the upstream (its SSH port), not through the gate: no way there from the agent's network.
    const direct = inAgent("timeout 5 bash -c 'exec 3<>/dev/tcp/upstream.test/22' && echo REACHED || echo refused")
    expect(direct.stdout).not.toContain("REACHED")
  })

  it("a clean push lands upstream", () => {
    const r = inAgent("cd /tmp/w && echo more >> README && git -c user.name=a -c user.email=a@b commit -qam 'clean change' && git push -q origin HEAD:main")
    expect(r.status, r.stdout + r.stderr).toBe(0)
    expect(upstreamLog().split("\n")[0]).toBe("clean change")
  })

  it("a push holding a planted AWS key is refused with the reason, and nothing reaches upstream", () => {
    const before = upstreamLog()
    const r = inAgent(`cd /tmp/w && printf 'aws_access_key_id = ${PLANTED}\\n' > config.ini && git add config.ini && git -c user.name=a -c user.email=a@b commit -qm 'add config' && git push origin HEAD:main`)
    expect(r.status).not.toBe(0)
    expect(r.stderr).toContain("look like a secret")
    expect(r.stderr).not.toContain(PLANTED)
    expect(upstreamLog()).toBe(before)
    const logs = bottle(env, "logs", "sb", "--service", "git")
    expect(logs.stdout + logs.stderr).toContain("push to origin refused")
  })

  it("a remote declared without push refuses pushes", () => {
    const r = inAgent("cd /tmp/w && git reset -q --hard origin/main && git push git@upstream.test:/srv/git/repo.git HEAD:refs/heads/other")
    expect(r.status).not.toBe(0)
    expect(r.stderr).toContain("pushing to mirror is not allowed")
  })

  it("a fetch refreshes from upstream first, and fails closed when the upstream is gone", () => {
    docker("exec", "-u", "git", upstream, "sh", "-c", `cd /tmp/seed && git pull -q ${repo} main && echo upstream >> README && git -c user.name=u -c user.email=u@x commit -qam 'upstream change' && git push -q ${repo} HEAD:main`)
    const fresh = inAgent("cd /tmp/w && git fetch -q origin && git log --format=%s -1 origin/main")
    expect(fresh.stdout.trim()).toBe("upstream change")
    docker("stop", "-t", "0", upstream)
    try {
      const stale = inAgent("cd /tmp/w && git fetch origin")
      expect(stale.status).not.toBe(0)
      expect(stale.stderr).toContain("cannot refresh origin from upstream")
    } finally {
      docker("start", upstream)
    }
  })

  it("the agent never sees the gate's key: not in its environment, its files, nor the gate's config", () => {
    const body = deployKey.split("\n")[1]!
    const r = inAgent("env; cat /proc/1/environ 2>/dev/null | tr '\\0' '\\n'; grep -rs . /bottle /workspace 2>/dev/null | head -n 1000")
    expect(r.stdout).not.toContain(body)
    expect(r.stdout).not.toContain("DEPLOY_KEY")
    // The gate's own files are not the agent's to read, even by name through the network.
    const viaGate = inAgent("git ls-remote git://git:9418/../keys/origin 2>&1; git ls-remote git://git:9418/etc/passwd 2>&1")
    expect(viaGate.stdout).not.toContain(body)
  })

  it("the agent files an egress request (MCP's JSON-RPC over HTTP, with curl); bottle approve adds the host to the spec file and applies it; the proxy then lets it through", () => {
    // The agent image has no Node for the SDK's client (the next test runs that one): the protocol's POSTs, from the agent itself.
    const call = (body: string) => inAgent(`curl -s -X POST "$BOTTLE_SUPERVISE_URL" -H 'content-type: application/json' -H 'accept: application/json, text/event-stream' -d '${body}'`)
    const init = call('{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}')
    expect(init.stdout).toContain("bottle-supervise")
    const filed = call('{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"request_egress","arguments":{"host":"docs.test","port":8080,"reason":"fetch docs\\u001b[2J"}}}')
    const id = /Request (r[0-9a-f]{12}) is filed/.exec(filed.stdout)?.[1]
    expect(id, filed.stdout + filed.stderr).toBeDefined()
    const listed = bottle(env, "requests")
    expect(listed.stdout).toContain(id!)
    expect(listed.stdout).toContain("docs.test:8080")
    expect(listed.stdout).not.toContain("\u001b")

    // Before: the proxy refuses it.
    const proxied = () => inAgent("curl -s --max-time 10 http://docs.test:8080/ || true")
    // A web server out there (on the egress side), for the request to reach once allowed.
    docker("run", "-d", "--name", `${prefix}-docs`, "--network", `${prefix}-sb_egress`, "--network-alias", "docs.test", "-w", "/etc", EGRESS_IMAGE, "python3", "-m", "http.server", "8080")
    // Before: the proxy refuses it.
    expect(proxied().stdout).toContain("is not allowed")

    const approved = bottle(env, "approve", id!, "-f", file, "--yes")
    expect(approved.status, approved.stdout + approved.stderr).toBe(0)
    expect(approved.stdout).toContain('+    allow: [api.anthropic.com, "docs.test:8080"]   # the model, and nothing else')
    expect(readFileSync(file, "utf8")).toContain('allow: [api.anthropic.com, "docs.test:8080"]   # the model, and nothing else')
    const check = call(`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"check_request","arguments":{"id":"${id}"}}}`)
    expect(check.stdout).toContain("approved")
    expect(bottle(env, "requests").stdout).toContain("No pending requests")
    expect(bottle(env, "diff", "-f", file).status).toBe(0)
    // After: through the proxy to the server (it lists /etc, where it runs).
    expect(proxied().stdout).toContain("passwd")
  })

  it("the MCP SDK's own client, in the agent's network namespace, lists the supervisor's tools and files a request", async () => {
    const { build } = await import("esbuild")
    const out = join(dir, "mcpClient.cjs")
    await build({ entryPoints: [join(ROOT, "tests", "support", "mcpClient.ts")], bundle: true, platform: "node", target: "node18", format: "cjs", outfile: out, logLevel: "error" })
    const r = spawnSync("docker", ["run", "--rm", "--network", `container:${prefix}-sb-agent-1`, "--cap-drop", "ALL", "-v", `${out}:/client.cjs:ro`, SUPERVISE,
      "node", "/client.cjs", "http://supervise:9100/", "request_egress", JSON.stringify({ host: "registry.npmjs.org", reason: "install a package" })], { encoding: "utf8" })
    expect(r.status, r.stdout + r.stderr).toBe(0)
    const [tools, answer] = r.stdout.trim().split("\n")
    expect(tools).toBe("check_request,request_capability,request_egress")
    const id = /Request (r[0-9a-f]{12}) is filed/.exec(answer ?? "")?.[1]
    expect(id, r.stdout).toBeDefined()
    const listed = bottle(env, "requests", "sb", "-o", "json")
    expect(JSON.parse(listed.stdout)).toContainEqual(expect.objectContaining({ id, kind: "egress", what: "registry.npmjs.org", bottle: "sb", decision: null }))
    expect(bottle(env, "deny", id!).status).toBe(0)
  })

  it("a denied request is told to the agent; a second decision is refused", () => {
    const call = (body: string) => inAgent(`curl -s -X POST "$BOTTLE_SUPERVISE_URL" -H 'content-type: application/json' -H 'accept: application/json, text/event-stream' -d '${body}'`)
    const filed = call('{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"request_capability","arguments":{"capability":"net_admin","reason":"tcpdump"}}}')
    const id = /Request (r[0-9a-f]{12}) is filed/.exec(filed.stdout)![1]!
    expect(bottle(env, "deny", id, "--note", "not in this bottle").status).toBe(0)
    expect(call(`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"check_request","arguments":{"id":"${id}"}}}`).stdout).toContain("denied: not in this bottle")
    const again = bottle(env, "approve", id)
    expect(again.status).toBe(2)
    expect(again.stderr).toContain("already denied")
  })

  it("a request file the supervisor's side could have shaped is not trusted: a symlink or a FIFO in the queue is skipped, and requests still answers", () => {
    const queue = join(home, "state", "sb", "supervise", "queue")
    execFileSync("ln", ["-s", "/etc/shadow", join(queue, "r0000000000aa.json")])
    expect(spawnSync("mkfifo", [join(queue, "r0000000000bb.json")]).status).toBe(0)
    const r = bottle(env, "requests", "--all")
    expect(r.status).toBe(0)
    expect(r.stdout).not.toContain("r0000000000aa")
    expect(r.stdout).not.toContain("r0000000000bb")
  })

  it("reconcile --prune takes the gate, the supervisor and the state dir with its mirrors and queue, and nothing else", () => {
    // What the test put on the bottle's network is not bottle's: taken off first, as its owner would.
    dockerOk("rm", "-f", `${prefix}-docs`)
    docker("network", "disconnect", "-f", `${prefix}-sb_egress`, upstream)
    const r = bottle(env, "reconcile", "--prune", "--yes")
    expect(r.status, r.stdout + r.stderr).toBe(0)
    expect(r.stdout).toContain(`${prefix}-sb-git-1`)
    expect(r.stdout).toContain(`${prefix}-sb-supervise-1`)
    expect(docker("ps", "-a", "--filter", `name=${prefix}-sb`, "--format", "{{.Names}}")).toBe("")
    expect(existsSync(join(home, "state", "sb"))).toBe(false)
    // Not bottle's: the upstream is left alone.
    expect(docker("ps", "-a", "--filter", `name=${upstream}`, "--format", "{{.Names}}")).toBe(upstream)
  })
})
