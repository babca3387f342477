#!/bin/sh
exec /opt/kafka/bin/run-class org.apache.kafka.tools.TopicCommand "$@"
