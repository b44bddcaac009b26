/*
 * data-prep's native hot loops, as a small Node-API addon (built by build.mjs; the JavaScript code falls back to
 * WebAssembly or to its own loops when it is missing, with the same results):
 * - the parse filter's native backend: tree-sitter's C runtime answering one question per file, "does the tree
 *   have an error?", without building any JavaScript node. Grammars are not compiled here: the grammar packages'
 *   own Node-API builds export each TSLanguage as a tagged external, and this addon borrows that pointer.
 * - MinHash's inner loop (minhash.ts `signatureOfTokens`): the same arithmetic, in 32-bit lanes.
 *
 *   parser()                                -> an external holding one TSParser (one per thread)
 *   hasError(parser, lang, text)            -> true | false; null when tree-sitter gave up (no tree)
 *   minhash(tokens, n, a, b, sig)           -> sig (Uint32Array, numPerm): min over shingles of a*s+b mod 2^32
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <node_api.h>
#include <tree_sitter/api.h>

/* The tag tree-sitter's grammar bindings put on their language externals ("tree-sitter", "language"). */
static const napi_type_tag LANGUAGE_TYPE_TAG = {0x8AF2E5212AD58ABF, 0xD5006CAD83ABBA16};

typedef struct {
  TSParser *parser;
  const TSLanguage *language;
  uint16_t *text;
  size_t capacity;
} Verdict;

#define CHECK(call)                                                            \
  do {                                                                         \
    if ((call) != napi_ok) {                                                   \
      napi_throw_error(env, NULL, "kiln-data-prep addon: " #call " failed");    \
      return NULL;                                                             \
    }                                                                          \
  } while (0)

static void finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  Verdict *v = data;
  ts_parser_delete(v->parser);
  free(v->text);
  free(v);
}

static napi_value make_parser(napi_env env, napi_callback_info info) {
  (void)info;
  Verdict *v = calloc(1, sizeof *v);
  if (!v || !(v->parser = ts_parser_new())) {
    free(v);
    napi_throw_error(env, NULL, "kiln-data-prep addon: out of memory");
    return NULL;
  }
  napi_value out;
  if (napi_create_external(env, v, finalize, NULL, &out) != napi_ok) {
    finalize(env, v, NULL);
    napi_throw_error(env, NULL, "kiln-data-prep addon: cannot create the parser");
    return NULL;
  }
  return out;
}

static napi_value has_error(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3) {
    napi_throw_type_error(env, NULL, "hasError(parser, language, text)");
    return NULL;
  }
  Verdict *v;
  CHECK(napi_get_value_external(env, argv[0], (void **)&v));
  bool tagged = false;
  CHECK(napi_check_object_type_tag(env, argv[1], &LANGUAGE_TYPE_TAG, &tagged));
  if (!tagged) {
    napi_throw_type_error(env, NULL, "hasError: the language is not a tree-sitter grammar binding's `language`");
    return NULL;
  }
  const TSLanguage *language;
  CHECK(napi_get_value_external(env, argv[1], (void **)&language));
  if (language != v->language) {
    if (!ts_parser_set_language(v->parser, language)) {
      napi_throw_error(env, NULL, "hasError: the grammar's ABI version is not one this tree-sitter runtime supports");
      return NULL;
    }
    v->language = language;
  }
  /* One copy of the text, as UTF-16 (V8's own string width for non-Latin-1 text; tree-sitter reads it as is). */
  size_t length;
  CHECK(napi_get_value_string_utf16(env, argv[2], NULL, 0, &length));
  if (length + 1 > v->capacity) {
    size_t capacity = (length + 1) * 2;
    uint16_t *text = realloc(v->text, capacity * sizeof *text);
    if (!text) {
      napi_throw_error(env, NULL, "hasError: out of memory");
      return NULL;
    }
    v->text = text;
    v->capacity = capacity;
  }
  CHECK(napi_get_value_string_utf16(env, argv[2], (char16_t *)v->text, v->capacity, &length));
  TSTree *tree = ts_parser_parse_string_encoding(v->parser, NULL, (const char *)v->text, (uint32_t)(length * 2), TSInputEncodingUTF16LE);
  napi_value out;
  if (!tree) {
    ts_parser_reset(v->parser);
    CHECK(napi_get_null(env, &out));
    return out;
  }
  bool error = ts_node_has_error(ts_tree_root_node(tree));
  ts_tree_delete(tree);
  CHECK(napi_get_boolean(env, error, &out));
  return out;
}

/*
 * A shingle's hash mixes its n token hashes in order; each permutation p maps it to a[p]*s + b[p] (mod 2^32);
 * the signature keeps the minimum per permutation. Repeated shingles change nothing (min is idempotent), so
 * unlike the JavaScript loop this one does not look them up in a set: 256 lanes of multiply-add-min cost less.
 * target_clones: an AVX2 copy where the CPU has it, the baseline otherwise (chosen at load time).
 */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("avx2", "default")))
#endif
static void minhash_loop(const uint32_t *tokens, size_t count, size_t n, const uint32_t *a, const uint32_t *b, uint32_t *sig, size_t perms) {
  for (size_t p = 0; p < perms; p++) sig[p] = 0xffffffffu;
  for (size_t i = 0; i + n <= count; i++) {
    uint32_t s = 0x9e3779b9u;
    for (size_t j = 0; j < n; j++) s = ((s ^ tokens[i + j]) * 0x85ebca6bu) ^ (s >> 13);
    s ^= s >> 16;
    for (size_t p = 0; p < perms; p++) {
      uint32_t v = a[p] * s + b[p];
      sig[p] = v < sig[p] ? v : sig[p];
    }
  }
}

static bool u32_array(napi_env env, napi_value v, uint32_t **data, size_t *length) {
  bool is;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) return false;
  napi_typedarray_type type;
  void *raw;
  if (napi_get_typedarray_info(env, v, &type, length, &raw, NULL, NULL) != napi_ok || type != napi_uint32_array) return false;
  *data = raw;
  return true;
}

static napi_value minhash(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint32_t *tokens, *a, *b, *sig;
  size_t count, na, nb, perms;
  uint32_t n;
  if (argc < 5 || !u32_array(env, argv[0], &tokens, &count) || napi_get_value_uint32(env, argv[1], &n) != napi_ok || n == 0 ||
      !u32_array(env, argv[2], &a, &na) || !u32_array(env, argv[3], &b, &nb) || !u32_array(env, argv[4], &sig, &perms) || na != perms || nb != perms) {
    napi_throw_type_error(env, NULL, "minhash(tokens: Uint32Array, n > 0, a, b, sig: Uint32Array of one length)");
    return NULL;
  }
  minhash_loop(tokens, count, n, a, b, sig, perms);
  return argv[4];
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
      {"parser", NULL, make_parser, NULL, NULL, NULL, napi_default, NULL},
      {"hasError", NULL, has_error, NULL, NULL, NULL, napi_default, NULL},
      {"minhash", NULL, minhash, NULL, NULL, NULL, napi_default, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof *props, props) != napi_ok) return NULL;
  return exports;
}
