// Types of bench/peers/env.mjs (plain JavaScript, run by the machine's node as well as by Node 24).
/** The peers' environment folder, made first when it is missing, incomplete or from another lock file. */
export function ensurePeers(): string;
/** The peers' python executable. */
export function peersPython(): string;
