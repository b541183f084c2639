// Validates GLB files with the Khronos glTF validator; prints one JSON report per file.
// Usage: node tests/tools/validate_gltf.mjs FILE...
import { readFile } from "node:fs/promises";
import validator from "gltf-validator";

const reports = {};
for (const path of process.argv.slice(2)) {
  const bytes = new Uint8Array(await readFile(path));
  const report = await validator.validateBytes(bytes, {
    uri: path,
    maxIssues: 100,
    externalResourceFunction: () => Promise.reject(new Error("no external resources")),
  });
  reports[path] = {
    errors: report.issues.numErrors,
    warnings: report.issues.numWarnings,
    messages: report.issues.messages
      .filter((m) => m.severity <= 1)
      .map((m) => `${m.severity === 0 ? "error" : "warning"} ${m.code} ${m.pointer ?? ""}: ${m.message}`),
  };
}
console.log(JSON.stringify(reports));
