/**
 * A test-only MCP client: the MCP SDK's own Client over its Streamable HTTP
 * transport, as an agent's MCP client would speak to the supervisor. Bundled
 * by the test (esbuild) and run with Node 18 in the agent's network
 * namespace. Usage: node mcpClient.cjs URL TOOL JSON-ARGS; prints the tool
 * names, then the call's text.
 */
import "../../src/sidecars/node18.js"
import { Client } from "@modelcontextprotocol/sdk/client/index.js"
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js"

const main = async () => {
  const [url, tool, args] = process.argv.slice(2) as [string, string, string]
  const client = new Client({ name: "bottle-test-client", version: "1" })
  await client.connect(new StreamableHTTPClientTransport(new URL(url)))
  const tools = await client.listTools()
  console.log(tools.tools.map((t) => t.name).sort().join(","))
  const r = await client.callTool({ name: tool, arguments: JSON.parse(args) })
  for (const c of r.content as Array<{ type: string; text?: string }>) if (c.type === "text") console.log(c.text)
  await client.close()
}
main().catch((e: unknown) => {
  console.error(e)
  process.exit(1)
})
