// Reports fields the Kubernetes API does not define (a misspelt key is silently dropped by the API
// server, and kubernetes-models' schemas allow extra keys). The known fields of each type are
// read from kubernetes-models' TypeScript declarations, following the types they refer to.
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

// Declarations are read as files: the packages' "exports" do not list the .d.ts paths.
const modules = resolve(dirname(fileURLToPath(import.meta.url)), "node_modules");
const packageFile = (spec) => resolve(modules, spec.replace(/\.js$/, "") + ".d.ts");
const declarations = new Map(); // file -> { interfaceBody, imports }

function load(file) {
  if (declarations.has(file)) return declarations.get(file);
  const text = readFileSync(file, "utf8").replace(/\/\*[\s\S]*?\*\//g, ""); // doc comments hold braces too
  const imports = new Map();
  for (const m of text.matchAll(/import \{ (\w+) \} from "([^"]+)";/g)) imports.set(m[1], m[2]);
  const start = text.indexOf("export interface ");
  const open = text.indexOf("{", start);
  const body = text.slice(open, matchBrace(text, open) + 1);
  const entry = { body, imports, file };
  declarations.set(file, entry);
  return entry;
}

function matchBrace(text, open) {
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    if (text[i] === "{") depth++;
    else if (text[i] === "}" && --depth === 0) return i;
  }
  throw new Error("unbalanced braces");
}

function resolveImport(fromFile, spec) {
  if (spec.startsWith(".")) return resolve(dirname(fromFile), spec.replace(/\.js$/, "") + ".d.ts");
  return packageFile(spec);
}

// The fields of an object type body "{ "a"?: T; ... }": name -> type text.
function fields(body) {
  const result = new Map();
  let i = 1;
  while (i < body.length - 1) {
    const m = /^\s*"([^"]+)"\??: /.exec(body.slice(i));
    if (!m) break;
    i += m[0].length;
    let depth = 0, j = i;
    for (; j < body.length; j++) {
      const c = body[j];
      if (c === "{" || c === "<" || c === "(") depth++;
      else if (c === "}" || c === ">" || c === ")") depth--;
      else if (c === ";" && depth === 0) break;
    }
    result.set(m[1], body.slice(i, j).trim());
    i = j + 1;
  }
  return result;
}

function check(value, type, context, path, problems) {
  if (value === null || typeof value !== "object") return;
  type = type.trim();
  const array = /^Array<([\s\S]*)>$/.exec(type);
  if (array) {
    if (Array.isArray(value)) value.forEach((v, k) => check(v, array[1], context, `${path}[${k}]`, problems));
    return;
  }
  if (type.startsWith("{")) {
    if (/^\{\s*\[key: string\]/.test(type)) return; // a map: any keys
    checkObject(value, type, context, path, problems);
    return;
  }
  if (context.imports.has(type)) {
    const target = load(resolveImport(context.file, context.imports.get(type)));
    checkObject(value, target.body, target, path, problems);
  }
  // Anything else (string, number, unions, IntOrString...) has no fields to check.
}

function checkObject(value, body, context, path, problems) {
  if (Array.isArray(value)) return;
  const known = fields(body);
  for (const [key, v] of Object.entries(value)) {
    if (!known.has(key)) problems.push(`${path}.${key}: not a field of this object`);
    else check(v, known.get(key), context, `${path}.${key}`, problems);
  }
}

/** Problems for one object whose model lives at modelPath (e.g. "kubernetes-models/apps/v1/StatefulSet"). */
export function unknownFields(object, modelPath) {
  const root = load(packageFile(modelPath));
  const problems = [];
  // apiVersion and kind come from TypeMeta, which the top-level declarations extend.
  const { apiVersion: _a, kind: _k, ...rest } = object;
  checkObject(rest, root.body, root, object.kind ?? "object", problems);
  return problems;
}
