/* cmd_study.c — placeholder until implemented. */
#include <stdio.h>
#include "commands.h"
int cmd_eval(int argc, char **argv) { (void)argc; fprintf(stderr, "srlm %s: not implemented yet\n", argv[0]); return 1; }
int cmd_study(int argc, char **argv) { (void)argc; fprintf(stderr, "srlm %s: not implemented yet\n", argv[0]); return 1; }
