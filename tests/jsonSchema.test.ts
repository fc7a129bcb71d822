import { readFileSync } from "node:fs"
import { describe, expect, it } from "vitest"
import { bottleJsonSchema } from "../src/resources/jsonSchema.js"

describe("specs/bottle.schema.json", () => {
  it("is what the spec's Schema generates (run `npm run schema` after changing it)", () => {
    expect(readFileSync("specs/bottle.schema.json", "utf8")).toBe(bottleJsonSchema())
  })
})
