/** @kiln/data-prep: the data-prep stage worker (issue #6, in progress): filters and PII/secret redaction so far. */
export {};
