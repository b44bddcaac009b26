/** The process around `kiln-gateway` (in progress). */
process.stderr.write('kiln-gateway: not built yet\n');
process.exitCode = 3;
