/** Plain JSON data: what a spec is once read, whichever path read it (fast-yaml.ts or source.ts). */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
