// Writes specs/bottle.schema.json from the spec's effect/Schema definitions.
import { writeFileSync } from "node:fs"
import { bottleJsonSchema } from "../src/resources/jsonSchema.js"

writeFileSync("specs/bottle.schema.json", bottleJsonSchema())
console.log("wrote specs/bottle.schema.json")
