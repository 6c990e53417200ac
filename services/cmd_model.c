/* cmd_model.c — placeholder until implemented. */
#include <stdio.h>
#include "commands.h"
int cmd_init(int argc, char **argv) { (void)argc; fprintf(stderr, "srlm %s: not implemented yet\n", argv[0]); return 1; }
int cmd_forward(int argc, char **argv) { (void)argc; fprintf(stderr, "srlm %s: not implemented yet\n", argv[0]); return 1; }
int cmd_generate(int argc, char **argv) { (void)argc; fprintf(stderr, "srlm %s: not implemented yet\n", argv[0]); return 1; }
