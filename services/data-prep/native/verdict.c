/*
 * The parse filter's native backend: tree-sitter's C runtime behind a two-function Node-API addon that
 * answers one question per file, "does the tree have an error?", without building any JavaScript node.
 * Grammars are not compiled here: the grammar packages' own Node-API builds export each TSLanguage as a
 * tagged external, and this addon borrows that pointer.
 *
 *   parser()                       -> an external holding one TSParser (one per thread)
 *   hasError(parser, lang, text)   -> true | false; null when tree-sitter gave up (no tree)
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
      napi_throw_error(env, NULL, "tree-sitter verdict: " #call " failed");    \
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
    napi_throw_error(env, NULL, "tree-sitter verdict: out of memory");
    return NULL;
  }
  napi_value out;
  if (napi_create_external(env, v, finalize, NULL, &out) != napi_ok) {
    finalize(env, v, NULL);
    napi_throw_error(env, NULL, "tree-sitter verdict: cannot create the parser");
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

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
      {"parser", NULL, make_parser, NULL, NULL, NULL, napi_default, NULL},
      {"hasError", NULL, has_error, NULL, NULL, NULL, napi_default, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof *props, props) != napi_ok) return NULL;
  return exports;
}
