#!/bin/bash
echo "hello from bash $BASH_VERSION as $(id -u)"
echo "input: $(cat)"
