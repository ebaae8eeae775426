#include <stdio.h>
int main(void) { puts("deep3d: under construction"); return 1; }
