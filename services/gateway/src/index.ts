/** @kiln/gateway: the serving gateway (issue #15, in progress). */
export {};
