/* cmd_tokenizer.c — placeholder until implemented. */
#include <stdio.h>
#include "commands.h"
int cmd_tokenize(int argc, char **argv) { (void)argc; fprintf(stderr, "srlm %s: not implemented yet\n", argv[0]); return 1; }
int cmd_detokenize(int argc, char **argv) { (void)argc; fprintf(stderr, "srlm %s: not implemented yet\n", argv[0]); return 1; }
int cmd_tokenizer(int argc, char **argv) { (void)argc; fprintf(stderr, "srlm %s: not implemented yet\n", argv[0]); return 1; }
