// Validates every object of a rendered manifest stream (stdin or a file) against the Kubernetes
// OpenAPI schemas shipped in kubernetes-models. Exit 1 and one line per problem when any fails.
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";
import { unknownFields } from "./unknown-fields.mjs";

const kinds = {
  "v1/ServiceAccount": ["kubernetes-models/v1/ServiceAccount", "ServiceAccount"],
  "v1/Secret": ["kubernetes-models/v1/Secret", "Secret"],
  "v1/Service": ["kubernetes-models/v1/Service", "Service"],
  "v1/Secret": ["kubernetes-models/v1/Secret", "Secret"],
  "v1/PersistentVolumeClaim": ["kubernetes-models/v1/PersistentVolumeClaim", "PersistentVolumeClaim"],
  "apps/v1/StatefulSet": ["kubernetes-models/apps/v1/StatefulSet", "StatefulSet"],
  "policy/v1/PodDisruptionBudget": ["kubernetes-models/policy/v1/PodDisruptionBudget", "PodDisruptionBudget"],
  "networking.k8s.io/v1/NetworkPolicy": ["kubernetes-models/networking.k8s.io/v1/NetworkPolicy", "NetworkPolicy"],
  "rbac.authorization.k8s.io/v1/Role": ["kubernetes-models/rbac.authorization.k8s.io/v1/Role", "Role"],
  "rbac.authorization.k8s.io/v1/RoleBinding": ["kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding", "RoleBinding"],
};

const text = readFileSync(process.argv[2] ?? 0, "utf8");
const problems = [];
let count = 0;
for (const doc of parseAllDocuments(text)) {
  if (doc.errors.length > 0) {
    problems.push(`YAML: ${doc.errors.map((e) => e.message).join("; ")}`);
    continue;
  }
  const object = doc.toJS();
  if (object == null) continue;
  count++;
  const id = `${object.kind ?? "?"}/${object.metadata?.name ?? "?"}`;
  const entry = kinds[`${object.apiVersion}/${object.kind}`];
  if (!entry) {
    problems.push(`${id}: no schema known for ${object.apiVersion} ${object.kind}`);
    continue;
  }
  const module = await import(entry[0]);
  try {
    new module[entry[1]](object).validate();
  } catch (e) {
    problems.push(`${id}: ${e.message}`);
  }
  for (const p of unknownFields(object, entry[0])) problems.push(`${id}: ${p}`);
}
if (count === 0) problems.push("no objects in the input");
for (const p of problems) console.error(p);
console.log(`${count} object(s), ${problems.length} problem(s)`);
process.exit(problems.length === 0 ? 0 : 1);
