// A TypeScript program written only against the types openapi-typescript generates
// from docs/openapi.json (`paths`, `components`), with openapi-fetch. tests/clients/run
// type-checks it (strict) and then runs it against a real server:
//   DIALTONE_URL=http://127.0.0.1:8080 DIALTONE_KEY=dt_test_… node generated/out/usage.js
// It creates a contact, reads it back, lists calls with a filter, and reads a 404 and
// a 400 as the document's ErrorBody (the 400's `details` as its list of fields).

import assert from "node:assert/strict";
import createClient from "openapi-fetch";
import type { components, paths } from "./generated/schema.js";

type Contact = components["schemas"]["Contact"];
type ContactInput = components["schemas"]["ContactInput"];
type ErrorBody = components["schemas"]["ErrorBody"];
type FieldError = components["schemas"]["FieldError"];
type UnauthorizedBody = components["schemas"]["UnauthorizedBody"];

const baseUrl = process.env.DIALTONE_URL;
const key = process.env.DIALTONE_KEY;
if (!baseUrl || !key) throw new Error("set DIALTONE_URL and DIALTONE_KEY");

const client = createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${key}` } });

/** An error answer as the document types it: ErrorBody, or the 401's own body. */
function errorBody(e: ErrorBody | UnauthorizedBody | undefined, status: number): ErrorBody {
  assert.ok(e, `expected an error body with ${status}`);
  assert.ok("statusCode" in e && e.statusCode === status, `statusCode ${JSON.stringify(e)}`);
  return e; // an UnauthorizedBody is an ErrorBody without the optional fields
}

/** `details` is documented as a list of fields or an object of facts. */
function fieldErrors(details: ErrorBody["details"]): FieldError[] {
  assert.ok(Array.isArray(details), `details should list fields: ${JSON.stringify(details)}`);
  return details;
}

// 1. Create a contact (the body is typed by ContactInput).
const input: ContactInput = {
  first_name: "Ada",
  last_name: "Lovelace",
  phone_number: "+15551234567",
  email: "ada@example.com",
  custom_fields: { plan: "pro", seats: 3, vip: true },
};
const created = await client.POST("/v1/contacts", { body: input });
assert.equal(created.response.status, 201, JSON.stringify(created.error));
assert.ok(created.data, "a created contact");
const contact: Contact = created.data;
assert.equal(contact.first_name, "Ada");
assert.equal(contact.phone_number, "+15551234567");

// 2. Read it back by id (the path parameter is typed).
const read = await client.GET("/v1/contacts/{id}", { params: { path: { id: contact.id } } });
assert.equal(read.response.status, 200);
assert.equal(read.data?.id, contact.id);

// 3. Place a (simulated) call to the contact, then list calls with filters: by the
//    number called (exactly that call), and by status (every call listed has it).
const placed = await client.POST("/v1/calls", { body: { to: "+15551234567" } });
assert.equal(placed.response.status, 201, JSON.stringify(placed.error));
assert.ok(placed.data, "a placed call");
const byNumber = await client.GET("/v1/calls", { params: { query: { to: "+15551234567" } } });
assert.equal(byNumber.response.status, 200, JSON.stringify(byNumber.error));
assert.deepEqual(byNumber.data?.data.map((c) => c.id), [placed.data.id]);
const calls = await client.GET("/v1/calls", {
  params: { query: { status: "completed", limit: 10 } },
});
assert.equal(calls.response.status, 200, JSON.stringify(calls.error));
assert.ok(calls.data, "a page of calls");
assert.ok(Array.isArray(calls.data.data));
for (const call of calls.data.data) assert.equal(call.status, "completed");
assert.equal(typeof calls.data.meta.has_more, "boolean");

// 4. A 404 read as the documented ErrorBody.
const missing = await client.GET("/v1/contacts/{id}", {
  params: { path: { id: "ct_00000000000000000000000000" } },
});
assert.equal(missing.response.status, 404);
const notFound = errorBody(missing.error, 404);
assert.equal(notFound.error, "NOT_FOUND");
assert.equal(typeof notFound.message, "string");

// 5. A 400 validation error: `details` parsed as the list of fields at fault.
const invalid = await client.POST("/v1/contacts", { body: { phone_number: "not a phone number" } });
assert.equal(invalid.response.status, 400);
const rejected = errorBody(invalid.error, 400);
assert.equal(rejected.error, "VALIDATION_ERROR");
const fields = fieldErrors(rejected.details);
assert.ok(
  fields.some((f) => f.field === "phone_number" && f.message.length > 0),
  JSON.stringify(fields),
);

console.log(`TypeScript client: contact ${contact.id} created and read, ${calls.data.data.length} completed calls listed, 404 NOT_FOUND and 400 VALIDATION_ERROR (${fields.length} field error(s)) read as ErrorBody`);
