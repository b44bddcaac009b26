// Types for the generated standalone validator (see scripts/gen-validator.ts).
import type { ValidateFunction } from 'ajv';
declare const validate: ValidateFunction;
export = validate;
