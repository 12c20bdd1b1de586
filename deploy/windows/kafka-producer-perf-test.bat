@echo off
rem Runs Strom's kafka-producer-perf-test.exe (one folder up, in bin\) with the given arguments,
rem as Kafka's bin\windows\kafka-producer-perf-test.bat does. Example:
rem   bin\windows\kafka-producer-perf-test.bat --topic perf --num-records 100000 --record-size 100 --throughput -1 --producer-props bootstrap.servers=localhost:9092
"%~dp0..\kafka-producer-perf-test.exe" %*
exit /b %ERRORLEVEL%
